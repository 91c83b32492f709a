"""How far apart the frozen sentence encoder puts instructions that differ in one attribute word, and
instructions that differ only in wording: cosine similarities of all-MiniLM-L6-v2 sentence embeddings
(mean-pooled, as the KITE grounding model receives them).

    python scripts/kite_embedding_similarity.py [SENTENCE ...]   # prints a JSON matrix
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT = ["pick up the small red cube", "pick up the large red cube", "pick up the small blue cube",
           "grab the small red cube", "could you raise the small red cube", "pick up the small cube",
           "pick up the red cube"]


def main() -> None:
    from policy_stack.policies.kite.text_encoder import SentenceEncoder

    sentences = sys.argv[1:] or DEFAULT
    emb = SentenceEncoder().encode(sentences)
    sim = (emb @ emb.T).tolist()
    print(json.dumps({"sentences": sentences, "cosine": [[round(x, 3) for x in row] for row in sim]}, indent=1))


if __name__ == "__main__":
    main()
