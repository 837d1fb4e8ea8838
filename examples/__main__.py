"""`make demo`: run every example and print one summary table."""

from . import (
    gene_ranking,
    median_normalization,
    quality_filter_operator,
    quality_filtering,
    smith_waterman,
    variant_selection,
)

EXAMPLES = [
    quality_filtering.main,
    quality_filter_operator.main,
    gene_ranking.main,
    variant_selection.main,
    median_normalization.main,
    smith_waterman.main,
]


def main() -> None:
    results = []
    for run in EXAMPLES:
        results.append(run())
        print()
    header = f"{'example':<22} {'metric':<18} {'before':>8} {'after':>8} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.name:<22} {r.metric:<18} {r.before:>8.3f} {r.after:>8.3f} {r.seconds:>8.1f}")
        print(f"{'':<22} {r.details}")


if __name__ == "__main__":
    main()
