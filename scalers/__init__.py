"""Autoscaling maths (KEDA Kafka lag, Knative KPA) and the KEDA external scaler (issue C)."""
