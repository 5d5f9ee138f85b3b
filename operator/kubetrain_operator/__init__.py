"""kubetrain operator: TrainingJob API, planning, status and the kopf handlers.

Nothing here imports TensorFlow, so the operator image stays small.
"""
