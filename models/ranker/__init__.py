"""The multi-task ranking stage: scores every merged retrieval candidate and builds the final lists.

``config`` (the frozen :class:`RankerConfig`), ``examples`` (training examples of the nights before D),
``features`` (the one feature assembly of training and serving), ``model`` (MMoE with DCN-v2 crosses),
``train``, ``artifacts`` (versioned save and load) and ``rank`` (scoring and the final-list rules).
"""
