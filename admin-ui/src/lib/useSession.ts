import { useSyncExternalStore } from "react";

import { currentSession, onSessionChange, type Session } from "./session";

let cached: { token: string | null; session: Session | null } = { token: null, session: null };

function snapshot(): Session | null {
  const session = currentSession();
  const token = session?.token ?? null;
  // useSyncExternalStore needs a stable object while nothing changed.
  if (token !== cached.token) cached = { token, session };
  return cached.session;
}

/** The signed-in session, re-rendering on sign-in/out (including a 401 from any call). */
export function useSession(): Session | null {
  return useSyncExternalStore(
    (notify) => onSessionChange(() => notify()),
    snapshot,
    snapshot,
  );
}
