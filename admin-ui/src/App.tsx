import { MantineProvider, Notification, createTheme, type CSSVariablesResolver } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { QueryClientProvider, type QueryClient } from "@tanstack/react-query";
import { RouterProvider } from "@tanstack/react-router";

import type { makeRouter } from "./router";

export const theme = createTheme({
  primaryColor: "blue",
  defaultRadius: "sm",
  components: {
    // Toasts: a named close button, and body text dark enough for WCAG AA.
    Notification: Notification.extend({
      defaultProps: { closeButtonProps: { "aria-label": "Close notification" } },
      styles: { description: { color: "var(--mantine-color-gray-7)" } },
    }),
  },
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
});

// Contrast (WCAG AA, 4.5:1 for small text, which axe checks): Mantine's defaults put white on
// shade 6 and links in shade 6, and "dimmed" text in gray 6, all under 4.5:1. Use shade 8 for
// filled controls and links, and gray 7 for dimmed text.
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
