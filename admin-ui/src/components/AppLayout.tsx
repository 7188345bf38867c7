import { AppShell, Burger, Button, Group, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { useQueryClient } from "@tanstack/react-query";
import { Outlet, useNavigate, useRouterState } from "@tanstack/react-router";
import { useEffect } from "react";

import { NavLinkLink } from "./links";
import { canOperate, isAdmin, signOut, type Session } from "../lib/session";
import { useSession } from "../lib/useSession";

interface NavItem {
  to: string;
  label: string;
  visible: (s: Session) => boolean;
}

/** UI.md's navigation, in its order; a link the user's roles cannot use is not shown. */
export const NAV_ITEMS: NavItem[] = [
  { to: "/policies", label: "Policies", visible: canOperate },
  { to: "/requests", label: "Requests", visible: () => true },
  { to: "/tasks", label: "My tasks", visible: () => true },
  { to: "/deliveries", label: "Deliveries", visible: canOperate },
  { to: "/callers", label: "Callers", visible: isAdmin },
  { to: "/delegations", label: "Delegations", visible: () => true },
  { to: "/audit", label: "Audit log", visible: canOperate },
];

export function AppLayout() {
  const session = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [opened, { toggle, close }] = useDisclosure(false);
  // Router paths are relative to the /admin base; strip it in case the location carries it.
  const pathname = useRouterState({ select: (s) => s.location.pathname.replace(/^\/admin(?=\/|$)/, "") || "/" });
  const href = useRouterState({ select: (s) => s.location.href });

  // Signed out (the button, or a 401 from any call): back to the sign-in page, then here again.
  useEffect(() => {
    if (!session) {
      queryClient.clear();
      void navigate({ to: "/sign-in", search: { next: href } });
    }
      // eslint-disable-next-line react-hooks/exhaustive-deps -- only when the session changes
  }, [session, navigate, queryClient]);

  useEffect(() => close(), [pathname, close]);

  if (!session) return null;
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 210, breakpoint: "sm", collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Title order={2} size="h4">
              Countersign
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" truncate="end" maw={220} title={session.user}>
              <span aria-label="Signed in as">{session.name}</span>
            </Text>
            <Button
              variant="default"
              size="xs"
              onClick={() => {
                signOut();
              }}
            >
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" component="nav" aria-label="Main">
        {NAV_ITEMS.filter((item) => item.visible(session)).map((item) => (
          <NavLinkLink
            key={item.to}
            to={item.to}
            label={item.label}
            active={pathname === item.to || pathname.startsWith(`${item.to}/`)}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <Outlet />
      </AppShell.Main>
    </AppShell>
  );
}
