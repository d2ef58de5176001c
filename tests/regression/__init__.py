"""Regression set of good and hostile submissions for the grading unit (issue 6 item 8)."""
