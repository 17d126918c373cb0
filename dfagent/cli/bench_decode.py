"""`dfagent bench decode` (issue 3: being written)."""
