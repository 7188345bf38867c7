import { screen, waitFor } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { fakeToken, renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";

describe("sign-in", () => {
  it("redirects to sign-in without a session and back to the page after a dev sign-in", async () => {
    let sent: unknown[] = [];
    server.use(
      http.post("*/v1/dev/token", async ({ request }) => {
        const body = (await request.json()) as { sub: string; roles: string[] };
        sent = [...sent, body];
        return HttpResponse.json({ access_token: fakeToken(body.sub, body.roles, "Carol Director"), expires_at: "2030-01-01T00:00:00Z" });
      }),
      http.get("*/v1/policies", () => HttpResponse.json([])),
    );
    const { user, router } = renderApp("/policies");
    expect(await screen.findByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument();
    expect(router.state.location.search).toMatchObject({ next: "/policies" });

    const username = await screen.findByRole("combobox", { name: "Username" });
    await user.type(username, "carol");
    await user.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("heading", { level: 1, name: "Policies" })).toBeInTheDocument();
    expect(sent.at(-1)).toEqual({ sub: "carol", roles: ["AWE_ADMIN"] });
    const nav = screen.getByRole("navigation", { name: "Main" });
    for (const name of ["Policies", "Requests", "My tasks", "Deliveries", "Callers", "Delegations", "Audit log"]) {
      expect(nav).toContainElement(screen.getByRole("link", { name }));
    }
    expect(screen.getByText("Carol Director")).toBeInTheDocument();
  });

  it("asks for a username instead of calling the service with none", async () => {
    server.use(http.post("*/v1/dev/token", () => HttpResponse.json({ access_token: fakeToken("x", []), expires_at: "" })));
    const { user } = renderApp("/sign-in");
    await user.click(await screen.findByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Enter a username")).toBeInTheDocument();
  });

  it("shows the service's problem when the token is refused", async () => {
    server.use(http.post("*/v1/dev/token", () => problem(404, { title: "Not Found", detail: "dev tokens are off", code: "not_found" })));
    const { user } = renderApp("/sign-in");
    await user.type(await screen.findByRole("combobox", { name: "Username" }), "alice");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("dev tokens are off")).toBeInTheDocument();
  });

  it("hides the operator links from a user without admin or viewer roles and lands on My tasks", async () => {
    signInAs("alice", []);
    renderApp("/");
    expect(await screen.findByRole("heading", { level: 1, name: "My tasks" })).toBeInTheDocument();
    const nav = screen.getByRole("navigation", { name: "Main" });
    expect(nav).toHaveTextContent("My tasks");
    for (const name of ["Policies", "Deliveries", "Callers", "Audit log"]) {
      expect(screen.queryByRole("link", { name })).not.toBeInTheDocument();
    }
  });

  it("goes back to sign-in when a call answers 401 and Sign out ends the session", async () => {
    signInAs("carol", ["AWE_ADMIN"]);
    server.use(http.get("*/v1/policies", () => problem(401, { title: "Unauthorized", detail: "token expired", code: "unauthenticated" })));
    renderApp("/policies");
    expect(await screen.findByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument();
    expect(sessionStorage.getItem("countersign.token")).toBeNull();
  });

  it("Sign out drops the token", async () => {
    signInAs("carol", ["AWE_ADMIN"]);
    server.use(http.get("*/v1/policies", () => HttpResponse.json([])));
    const { user } = renderApp("/policies");
    await user.click(await screen.findByRole("button", { name: "Sign out" }));
    await waitFor(() => expect(screen.getByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument());
    expect(sessionStorage.getItem("countersign.token")).toBeNull();
  });
});
