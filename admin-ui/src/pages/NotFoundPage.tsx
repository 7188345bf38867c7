import { Center, Stack, Text, Title } from "@mantine/core";

import { AnchorLink } from "../components/links";

export function NotFoundPage() {
  return (
    <Center py="xl" component="main">
      <Stack align="center">
        <Title order={1} size="h2">
          Page not found
        </Title>
        <Text c="dimmed">There is no admin page at this address.</Text>
        <AnchorLink to="/">
          Go to the start page
        </AnchorLink>
      </Stack>
    </Center>
  );
}
