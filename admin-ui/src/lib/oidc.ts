// OIDC mode: authorization code with PKCE against the issuer named by /v1/config, for the UI's
// public client (COUNTERSIGN_UI_CLIENT_ID). oidc-client-ts keeps its state in sessionStorage.
import { UserManager, WebStorageStateStore } from "oidc-client-ts";

import type { RuntimeConfig } from "../api/auth";

const CALLBACK_PATH = "/admin/sign-in/callback";

export function userManager(config: RuntimeConfig): UserManager {
  const oidc = config.oidc;
  if (!oidc?.issuer || !oidc.client_id) {
    throw new Error("the service is in OIDC mode but /v1/config names no issuer or UI client id (COUNTERSIGN_UI_CLIENT_ID)");
  }
  const scopes = oidc.scopes || "openid profile";
  return new UserManager({
    authority: oidc.issuer,
    client_id: oidc.client_id,
    redirect_uri: window.location.origin + CALLBACK_PATH,
    post_logout_redirect_uri: window.location.origin + "/admin/sign-in",
    response_type: "code",
    scope: scopes,
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    automaticSilentRenew: false,
  });
}

/** Start the flow; `next` comes back in the state so the callback returns the user there. */
export async function startOidcSignIn(config: RuntimeConfig, next: string | undefined): Promise<void> {
  await userManager(config).signinRedirect({ state: { next: next ?? "/admin/" } });
}

/** Finish the flow on the callback page: the access token, and where to go next. */
export async function finishOidcSignIn(config: RuntimeConfig): Promise<{ token: string; next: string }> {
  const user = await userManager(config).signinRedirectCallback();
  const state = user.state as { next?: unknown } | undefined;
  const next = typeof state?.next === "string" && state.next.startsWith("/admin") ? state.next : "/admin/";
  return { token: user.access_token, next };
}
