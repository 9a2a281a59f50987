// Where the viewer is, with its consent: the node places a viewer by `lat`/`lon` in the URL
// (geofences), else by MEC, a zone hint or its default. The page never asks on load: a browser
// already granted the permission is asked for a position before connecting; otherwise a button
// offers it. Once consented, the position is followed (watchPosition): each move is sent to the
// node as a `position` control message, which moves the viewer between zones at the next
// keyframe, without reconnecting.

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

/**
 * Calls `onMove({ lat, lon })` whenever the rounded position changes, until the returned
 * function is called. Nothing happens where geolocation is unavailable or refused.
 */
export function followPosition(onMove) {
  if (!geolocationAvailable()) return () => {};
  let last;
  const id = navigator.geolocation.watchPosition(
    (position) => {
      const now = {
        lat: position.coords.latitude.toFixed(DECIMALS),
        lon: position.coords.longitude.toFixed(DECIMALS),
      };
      if (last && last.lat === now.lat && last.lon === now.lon) return;
      last = now;
      onMove(now);
    },
    () => {},
    { enableHighAccuracy: false, maximumAge: MAX_AGE_MS },
  );
  return () => navigator.geolocation.clearWatch(id);
}
