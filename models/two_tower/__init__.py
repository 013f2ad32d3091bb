"""Two-tower retrieval: a user tower and a video tower trained with in-batch sampled softmax."""
