import { Textarea } from "@mantine/core";
import { screen, within } from "@testing-library/react";
import { useState } from "react";
import { describe, expect, it, vi } from "vitest";

import { renderComponent } from "../test/render";
import { ConfirmDialog } from "./ConfirmDialog";

function WithReason({ onConfirm, onClose }: { onConfirm: (reason: string) => void; onClose: () => void }) {
  const [reason, setReason] = useState("");
  return (
    <ConfirmDialog
      opened
      title="Cancel this request?"
      confirmLabel="Confirm cancel"
      cancelLabel="Keep it"
      confirmDisabled={reason.trim() === ""}
      onConfirm={() => onConfirm(reason)}
      onClose={onClose}
    >
      <Textarea label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} />
    </ConfirmDialog>
  );
}

describe("ConfirmDialog", () => {
  it("names the action on its button and shows a string body as text", async () => {
    renderComponent(<ConfirmDialog opened title="Revoke this secret?" confirmLabel="Revoke secret" onConfirm={() => {}} onClose={() => {}}>It stops signing at once.</ConfirmDialog>);
    const dialog = await screen.findByRole("dialog", { name: "Revoke this secret?" });
    expect(within(dialog).getByText("It stops signing at once.")).toBeInTheDocument();
    expect(within(dialog).getByRole("button", { name: "Revoke secret" })).toBeEnabled();
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toBeInTheDocument();
  });

  it("cannot be confirmed while a field is missing, by button or by Enter", async () => {
    const onConfirm = vi.fn();
    const { user } = renderComponent(<WithReason onConfirm={onConfirm} onClose={() => {}} />);
    const dialog = await screen.findByRole("dialog", { name: "Cancel this request?" });
    const confirm = within(dialog).getByRole("button", { name: "Confirm cancel" });
    expect(confirm).toBeDisabled();
    await user.click(confirm);
    expect(onConfirm).not.toHaveBeenCalled();
    await user.type(within(dialog).getByRole("textbox", { name: "Reason" }), "duplicate");
    expect(confirm).toBeEnabled();
    await user.click(confirm);
    expect(onConfirm).toHaveBeenCalledWith("duplicate");
  });

  it("confirms on Enter in a field, since it is a form", async () => {
    const onConfirm = vi.fn();
    const { user } = renderComponent(
      <ConfirmDialog opened title="Rotate secret" confirmLabel="Rotate secret" onConfirm={onConfirm} onClose={() => {}}>
        <input aria-label="Grace hours" defaultValue="24" />
      </ConfirmDialog>,
    );
    await user.type(await screen.findByRole("textbox", { name: "Grace hours" }), "{Enter}");
    expect(onConfirm).toHaveBeenCalledTimes(1);
  });

  it("closes without confirming from its cancel button", async () => {
    const onConfirm = vi.fn();
    const onClose = vi.fn();
    const { user } = renderComponent(<WithReason onConfirm={onConfirm} onClose={onClose} />);
    await user.click(await screen.findByRole("button", { name: "Keep it" }));
    expect(onClose).toHaveBeenCalled();
    expect(onConfirm).not.toHaveBeenCalled();
  });
});
