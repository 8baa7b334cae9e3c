"""Thrown-object detection: frame differencing, tracking, trajectory, floor estimate, evidence."""
