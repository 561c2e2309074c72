"""Autoscaling maths (KEDA Kafka lag, HPA, Knative KPA), offset reading, and the KEDA external scaler."""
