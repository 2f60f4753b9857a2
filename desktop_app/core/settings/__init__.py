"""What a person set: profiles, their schedules, credentials, sign-in, and where
Ferry keeps its files."""
