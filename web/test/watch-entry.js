// The third-party player, unmodified: registers <moq-watch>.
import "@moq/watch/element";
