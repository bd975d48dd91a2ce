"""Projects, members and roles."""
