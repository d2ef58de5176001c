"""Regression set of good and hostile submissions for the grading unit."""
