import { screen, waitFor } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { useState } from "react";
import { describe, expect, it } from "vitest";

import type { DirectoryKind } from "../api/directory";
import { renderComponent, signInAs } from "../test/render";
import { problem, server } from "../test/server";
import { DirectoryPicker } from "./DirectoryPicker";

function Picker({ kind, label, client }: { kind: DirectoryKind; label: string; client?: string }) {
  const [value, setValue] = useState("");
  return (
    <>
      <DirectoryPicker kind={kind} label={label} value={value} onChange={setValue} client={client} />
      <output aria-label="value">{value}</output>
    </>
  );
}

describe("DirectoryPicker", () => {
  it("suggests the directory's users as you type, with their names, and takes the one picked", async () => {
    signInAs("carol");
    const queries: (string | null)[] = [];
    server.use(
      http.get("*/v1/admin/directory/users", ({ request }) => {
        const q = new URL(request.url).searchParams.get("q");
        queries.push(q);
        const all = [
          { user_id: "alice", username: "alice", email: "alice@example.org", name: "Alice Officer" },
          { user_id: "albert", username: "albert", email: null, name: null },
          { user_id: "carol", username: "carol", email: "carol@example.org", name: "Carol Director" },
        ];
        return HttpResponse.json(all.filter((u) => !q || u.user_id.startsWith(q)));
      }),
    );
    const { user } = renderComponent(<Picker kind="users" label="User" />);
    const field = screen.getByRole("combobox", { name: "User" });
    await user.type(field, "al");
    await waitFor(() => expect(queries).toContain("al"));
    const option = await screen.findByRole("option", { name: /alice/, hidden: true });
    expect(option).toHaveTextContent("alice Alice Officer");
    expect(screen.getByRole("option", { name: "albert", hidden: true })).toBeInTheDocument();
    expect(screen.queryByRole("option", { name: /carol/, hidden: true })).not.toBeInTheDocument();
    await user.click(option);
    expect(screen.getByLabelText("value")).toHaveTextContent(/^alice$/);
  });

  it("keeps free text: a rule may name someone the directory does not list yet", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/admin/directory/groups", () => HttpResponse.json([])));
    const { user } = renderComponent(<Picker kind="groups" label="Group" />);
    await user.type(screen.getByRole("combobox", { name: "Group" }), "/new/team");
    expect(screen.getByLabelText("value")).toHaveTextContent("/new/team");
  });

  it("asks for a client's roles when the rule names a client", async () => {
    signInAs("carol");
    const clients: (string | null)[] = [];
    server.use(
      http.get("*/v1/admin/directory/roles", ({ request }) => {
        clients.push(new URL(request.url).searchParams.get("client"));
        return HttpResponse.json([{ name: "approver", description: "Registry approvers" }]);
      }),
    );
    const { user } = renderComponent(<Picker kind="roles" label="Role" client="registry" />);
    await user.click(screen.getByRole("combobox", { name: "Role" }));
    expect(await screen.findByRole("option", { name: /approver/, hidden: true })).toHaveTextContent("Registry approvers");
    expect(clients).toContain("registry");
  });

  it("says the directory is unreachable and still lets the value be typed", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/admin/directory/users", () => problem(503, { title: "Directory unavailable", code: "directory_unavailable" })));
    const { user } = renderComponent(<Picker kind="users" label="User" />);
    expect(await screen.findByText("The directory could not be reached; type the value.")).toBeInTheDocument();
    await user.type(screen.getByRole("combobox", { name: "User" }), "zoe");
    expect(screen.getByLabelText("value")).toHaveTextContent("zoe");
  });
});
