// The one API client: openapi-fetch over the generated schema (`make client`). Pages never call
// fetch themselves; they use the TanStack Query hooks in src/api/*.ts, which go through `api`.
import createClient, { type Middleware } from "openapi-fetch";

import { ApiError, toApiError } from "../lib/problem";
import { currentSession, signOut } from "../lib/session";
import type { paths } from "./schema";

const auth: Middleware = {
  onRequest({ request }) {
    const session = currentSession();
    if (session && !request.headers.has("Authorization")) {
      request.headers.set("Authorization", `Bearer ${session.token}`);
    }
    return request;
  },
  onResponse({ request, response }) {
    // An expired or revoked token: drop the session; the router then shows the sign-in page.
    if (response.status === 401 && request.headers.has("Authorization")) signOut();
    return response;
  },
};

export const api = createClient<paths>({
  // Absolute, so the same client works in the browser and under jsdom (msw) in tests.
  baseUrl: typeof window !== "undefined" ? window.location.origin : "",
  // Looked up on every call, so msw (which patches globalThis.fetch) can intercept in tests.
  fetch: (request: Request) => globalThis.fetch(request),
});
api.use(auth);

interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** Await an openapi-fetch call and return its data, or throw an ApiError (problem+json). */
export async function unwrap<T>(call: Promise<FetchResult<T>>): Promise<T> {
  let result: FetchResult<T>;
  try {
    result = await call;
  } catch (e) {
    throw new ApiError(0, {
      title: "Network error",
      detail: e instanceof Error ? e.message : "the service could not be reached",
    });
  }
  if (result.error !== undefined || !result.response.ok) {
    throw toApiError(result.response.status, result.error);
  }
  return result.data as T;
}

/** One page of a cursor-paged list (API.md: bare array, next cursor in `X-Next-Cursor`). */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export async function unwrapPage<T>(call: Promise<FetchResult<T[]>>): Promise<Page<T>> {
  let response: Response | undefined;
  const items = await unwrap(
    call.then((r) => {
      response = r.response;
      return r;
    }),
  );
  return { items, nextCursor: response?.headers.get("X-Next-Cursor") ?? null };
}
