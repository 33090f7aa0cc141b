"""In-app notifications: a member's inbox (mentions, replies), the header bell's unread count."""
