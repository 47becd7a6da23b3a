"""What the tests share: stacks, stand-ins, runners and checks; no tests of their own."""
