"""How long the blocklist check takes per prompt (`bot.governance.contains_blocked`).

It runs on the event loop for every `/sora text` and `/sora image`, so it must stay far
below a millisecond even for a server with the most phrases allowed. The product's own
function is timed, with the list as the store returns it (already normalised).

    .venv/bin/python -m bench.blocklist
"""

from __future__ import annotations

import random
import string
import time

from bot.governance import MAX_PHRASES, contains_blocked, normalise_phrase


def words(rng: random.Random, count: int, length: int) -> str:
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=length)) for _ in range(count))


def per_check(phrases: list[str], prompt: str, rounds: int = 2000) -> float:
    contains_blocked(prompt, phrases)  # the list's first use builds its cache, as in production
    began = time.perf_counter()
    for _ in range(rounds):
        contains_blocked(prompt, phrases)
    return (time.perf_counter() - began) / rounds * 1000


def main() -> None:
    rng = random.Random(14)
    print("| phrases | prompt chars | ms per check (no match) | ms per check (match) |")
    print("|---|---|---|---|")
    for count in (10, 100, MAX_PHRASES):
        phrases = [normalise_phrase(words(rng, 2, 6)) for _ in range(count)]
        for length in (100, 1000, 4000):
            prompt = words(rng, length // 8 + 1, 7)[:length]
            hit = prompt[: length - 20] + " " + phrases[-1]
            print(
                f"| {count} | {length} | {per_check(phrases, prompt):.3f} | "
                f"{per_check(phrases, hit):.3f} |"
            )


if __name__ == "__main__":
    main()
