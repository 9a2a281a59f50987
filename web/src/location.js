// Where the viewer is, with its consent: the node places a viewer by `lat`/`lon` in the URL
// (geofences), else by MEC, a zone hint or its default. The page never asks on load: a browser
// already granted the permission is asked for a position before connecting; otherwise a button
// offers it, and a position obtained later reconnects with it.

/** A position older than this is not used. */
const MAX_AGE_MS = 60_000;
const TIMEOUT_MS = 3_000;
/** Four decimals: about 11 m, enough for a mall's geofence and no more precise than that. */
const DECIMALS = 4;

export function geolocationAvailable() {
  return typeof navigator !== "undefined" && "geolocation" in navigator && window.isSecureContext;
}

/** "granted", "prompt", "denied", or "unavailable". */
export async function permission() {
  if (!geolocationAvailable()) return "unavailable";
  try {
    return (await navigator.permissions.query({ name: "geolocation" })).state;
  } catch {
    // No Permissions API (older Safari): asking is the only way to know.
    return "prompt";
  }
}

/** `{ lat, lon }` rounded, or undefined when refused, unavailable or too slow. */
export function currentPosition() {
  if (!geolocationAvailable()) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (position) =>
        resolve({
          lat: position.coords.latitude.toFixed(DECIMALS),
          lon: position.coords.longitude.toFixed(DECIMALS),
        }),
      () => resolve(undefined),
      { enableHighAccuracy: false, maximumAge: MAX_AGE_MS, timeout: TIMEOUT_MS },
    );
  });
}
