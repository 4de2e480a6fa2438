"""The station live view, visitor guidance page and alignment check (issue 15), on edge/web."""
