import {
  DEFAULT_THEME,
  Input,
  MantineProvider,
  Modal,
  Notification,
  TableScrollContainer,
  createTheme,
  type CSSVariablesResolver,
  type MantineColorsTuple,
} from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { QueryClientProvider, type QueryClient } from "@tanstack/react-query";
import { RouterProvider } from "@tanstack/react-router";

import { readable } from "./lib/colour";
import type { makeRouter } from "./router";

// Contrast (WCAG AA, 4.5:1 for small text, which axe checks). Mantine's defaults put white on
// shade 6, links and text in shade 6, light variants' text (shade 9) on shade 1 or 2 (hover) and
// "dimmed" text in gray 6, all under 4.5:1 for several colours (white on green 8 is 3.4:1). So:
// shades 8 and 9 of every colour are darkened where needed until shade 8 passes on shade 1 and
// shade 9 on shade 2, filled controls, links and text use shade 8, dimmed text gray 7.
const colors = Object.fromEntries(
  Object.entries(DEFAULT_THEME.colors).map(([name, shades]) => {
    const out = [...shades] as string[];
    out[8] = readable(shades[8], shades[1]);
    out[9] = readable(shades[9], shades[2]);
    return [name, out as unknown as MantineColorsTuple];
  }),
);

export const theme = createTheme({
  primaryColor: "blue",
  defaultRadius: "sm",
  colors,
  components: {
    // Toasts: a named close button, and body text dark enough for WCAG AA.
    Notification: Notification.extend({
      defaultProps: { closeButtonProps: { "aria-label": "Close notification" } },
      styles: { description: { color: "var(--mantine-color-gray-7)" } },
    }),
    // A field's description goes under its input, so the inputs of a row line up whether or not
    // their fields have one (label, input, description, error).
    InputWrapper: Input.Wrapper.extend({ defaultProps: { inputWrapperOrder: ["label", "input", "description", "error"] } }),
    // Every dialog's close (×) button has a name (axe: button-name).
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { "aria-label": "Close" } } }),
    // A wide table in a narrow window scrolls sideways: its viewport takes the keyboard focus so
    // arrow keys scroll it too (axe: scrollable-region-focusable).
    TableScrollContainer: TableScrollContainer.extend({ defaultProps: { scrollAreaProps: { viewportProps: { tabIndex: 0 } } } }),
  },
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
});

const cssVariables: CSSVariablesResolver = (t) => {
  const light: Record<string, string> = {
    "--mantine-color-dimmed": t.colors.gray[7],
    "--mantine-color-anchor": t.colors.blue[8],
    "--mantine-color-error": t.colors.red[9],
  };
  for (const [name, shades] of Object.entries(t.colors)) {
    light[`--mantine-color-${name}-filled`] = shades[8];
    light[`--mantine-color-${name}-filled-hover`] = shades[9];
    light[`--mantine-color-${name}-text`] = shades[8];
    light[`--mantine-color-${name}-outline`] = shades[8];
  }
  return { variables: {}, light, dark: {} };
};

export function App({ queryClient, router }: { queryClient: QueryClient; router: ReturnType<typeof makeRouter> }) {
  return (
    <MantineProvider theme={theme} cssVariablesResolver={cssVariables}>
      <Notifications />
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </MantineProvider>
  );
}
