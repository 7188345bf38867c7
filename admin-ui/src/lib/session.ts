// The signed-in session: the bearer token in sessionStorage (one tab, gone when it closes) and
// what the UI reads from it (principal id, roles). The server checks everything again; the
// roles here only decide which links to show.

const TOKEN_KEY = "countersign.token";

export const ADMIN_ROLE = "AWE_ADMIN";
export const VIEWER_ROLE = "AWE_VIEWER";

export interface Session {
  token: string;
  /** The principal id: preferred_username, else username, else sub (API.md "Identity"). */
  user: string;
  name: string;
  roles: string[];
  /** Seconds since the epoch, from `exp`. */
  expiresAt: number | null;
}

type Listener = (session: Session | null) => void;
const listeners = new Set<Listener>();

function decodePayload(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const json = new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
    const value: unknown = JSON.parse(json);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

export function sessionFromToken(token: string): Session | null {
  const claims = decodePayload(token);
  if (!claims) return null;
  const pick = (k: string) => (typeof claims[k] === "string" ? (claims[k] as string) : undefined);
  const user = pick("preferred_username") ?? pick("username") ?? pick("sub");
  if (!user) return null;
  const realm = claims["realm_access"] as { roles?: unknown } | undefined;
  const roles = new Set(strings(realm?.roles));
  const resource = claims["resource_access"];
  if (typeof resource === "object" && resource !== null) {
    for (const entry of Object.values(resource as Record<string, { roles?: unknown }>)) {
      for (const r of strings(entry?.roles)) roles.add(r);
    }
  }
  const exp = typeof claims["exp"] === "number" ? (claims["exp"] as number) : null;
  return { token, user, name: pick("name") ?? user, roles: [...roles], expiresAt: exp };
}

export function currentSession(): Session | null {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const session = sessionFromToken(token);
  if (!session || (session.expiresAt !== null && session.expiresAt * 1000 < Date.now())) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return session;
}

export function signIn(token: string): Session {
  const session = sessionFromToken(token);
  if (!session) throw new Error("the service returned a token this UI cannot read");
  sessionStorage.setItem(TOKEN_KEY, token);
  listeners.forEach((l) => l(session));
  return session;
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  listeners.forEach((l) => l(null));
}

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function isAdmin(session: Session | null): boolean {
  return !!session?.roles.includes(ADMIN_ROLE);
}

/** Admins and viewers may read the operator pages (policies, requests, deliveries, audit). */
export function canOperate(session: Session | null): boolean {
  return !!session && (session.roles.includes(ADMIN_ROLE) || session.roles.includes(VIEWER_ROLE));
}
