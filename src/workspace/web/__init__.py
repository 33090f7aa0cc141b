"""HTTP kit: the request unit of work, the one authorization guard, sessions, rendering, errors."""
