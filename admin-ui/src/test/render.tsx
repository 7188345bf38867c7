// Render the real app (router, providers) at a path, optionally signed in, for page tests; or one
// component inside the app's providers (Mantine theme, a query client), for component tests.
import { MantineProvider } from "@mantine/core";
import { QueryClientProvider } from "@tanstack/react-query";
import { createMemoryHistory } from "@tanstack/react-router";
import type { ReactElement } from "react";
import { render } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { App, theme } from "../App";
import { makeQueryClient } from "../api/queryClient";
import { makeRouter } from "../router";

/** An unsigned JWT-shaped token: the UI only reads claims; the (mocked) server decides. */
export function fakeToken(sub: string, roles: string[] = [], name?: string): string {
  const enc = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return `${enc({ alg: "RS256", typ: "JWT" })}.${enc({ sub, preferred_username: sub, name, exp, realm_access: { roles } })}.sig`;
}

export function signInAs(sub: string, roles: string[] = ["AWE_ADMIN"]): void {
  sessionStorage.setItem("countersign.token", fakeToken(sub, roles));
}

export function renderApp(path: string) {
  const queryClient = makeQueryClient();
  queryClient.setDefaultOptions({ queries: { ...queryClient.getDefaultOptions().queries, retry: false } });
  const history = createMemoryHistory({ initialEntries: [`/admin${path}`] });
  const router = makeRouter(queryClient, history);
  const user = userEvent.setup();
  const utils = render(<App queryClient={queryClient} router={router} />);
  return { ...utils, router, queryClient, user };
}

export function renderComponent(ui: ReactElement) {
  const queryClient = makeQueryClient();
  queryClient.setDefaultOptions({ queries: { ...queryClient.getDefaultOptions().queries, retry: false } });
  // No pause between keys: the editor tests type a lot, and the machine is shared.
  const user = userEvent.setup({ delay: null });
  const utils = render(
    <MantineProvider theme={theme}>
      <QueryClientProvider client={queryClient}>{ui}</QueryClientProvider>
    </MantineProvider>,
  );
  return { ...utils, queryClient, user };
}
