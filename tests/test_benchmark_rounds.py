"""``python -m benchmarks --rounds N``: every configuration N times, the frameworks' turns
rotated each round, and the report's median (min-max) over rounds. No Jittor needed."""

from __future__ import annotations

from benchmarks import report
from benchmarks.__main__ import jobs, ordered, parse


def test_rounds_rotate_the_frameworks_and_skip_what_is_named():
    args = parse(["--problems", "ridge", "--sizes", "large", "--methods", "RAD,CG",
                  "--frameworks", "jboat,bare,boattorch", "--skip", "boattorch:CG",
                  "--rounds", "3"])
    specs = list(ordered(jobs(args), args.rounds))
    assert len(specs) == 3 * (3 + 2)
    rad = [(s["round"], s["framework"]) for s in specs if s["method"] == "RAD"]
    assert [fw for k, fw in rad if k == 0] == ["jboat", "bare", "boattorch"]
    assert [fw for k, fw in rad if k == 1] == ["bare", "boattorch", "jboat"]
    assert [fw for k, fw in rad if k == 2] == ["boattorch", "jboat", "bare"]
    assert not [s for s in specs if s["method"] == "CG" and s["framework"] == "boattorch"]


def test_a_run_can_continue_at_a_later_round():
    args = parse(["--problems", "ridge", "--sizes", "large", "--methods", "RAD",
                  "--frameworks", "jboat,bare,boattorch", "--rounds", "2", "--first-round", "1"])
    specs = [(s["round"], s["framework"]) for s in ordered(jobs(args), args.rounds,
                                                           args.first_round)]
    assert specs == [(1, "bare"), (1, "boattorch"), (1, "jboat"),
                     (2, "boattorch"), (2, "jboat"), (2, "bare")]


def test_one_round_keeps_the_records_unmarked():
    args = parse(["--problems", "ridge", "--sizes", "small", "--methods", "RAD",
                  "--frameworks", "jboat,bare"])
    assert all("round" not in s for s in ordered(jobs(args), args.rounds))


def test_rounds_table_gives_median_and_spread_of_per_round_ratios():
    doc = {"runs": []}
    times = {"jboat": [10, 11, 12], "bare": [10, 10, 10], "boattorch": [20, 11, 12]}
    for fw, ms in times.items():
        for k, t in enumerate(ms):
            doc = report.merge(doc, [dict(framework=fw, problem="ridge", size="large",
                                          method="RAD", K=10, tag="x", round=k, ok=True,
                                          median_s=t / 1e3, cosine=1.0, rel_err=1e-6,
                                          info={"threads": 1})])
    assert len(doc["runs"]) == 9  # rounds are kept apart, not merged into one record
    row = report.rounds_table(doc, "x").splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "3" and cells[4] == "11.00 (10.00-12.00)"
    assert cells[8] == "1.10 (1.00-1.20)"           # jboat / bare
    assert cells[12] == "1.00 (0.50-1.00)"          # jboat / BOAT, per round
    assert "rounds, order rotated" in report.markdown(doc)


def test_paired_calls_alternate_inside_each_pair_and_report_median_ratios():
    """``benchmarks.paired``: jboat and bare in one process, one call each in turn, the
    order inside a pair alternating; the table gives the median over rounds of the
    rounds' median pair ratios with their min-max."""
    from benchmarks import paired

    seen = []
    times = paired.pair_times({"jboat": lambda: seen.append("j"),
                               "bare": lambda: seen.append("b")}, 4)
    assert "".join(seen) == "jbbjjbbj"
    assert [len(v) for v in times.values()] == [4, 4]
    s = paired.summarize({"jboat": [2.0, 3.0, 4.0], "bare": [1.0, 2.0, 2.0]})
    assert (s["jboat_ms"], s["bare_ms"], s["ratio"]) == (3000.0, 2000.0, 2.0)
    assert (s["ratio_q10"], s["ratio_q90"]) == (1.5, 2.0)
    rec = {"problem": "ridge", "method": "FD", "rounds": [
        dict(s, ratio=r, jboat_ms=j) for r, j in ((1.2, 2.0), (1.4, 3.0), (1.3, 4.0))]}
    row = paired.report([rec]).splitlines()[-1]
    assert row == "| FD | ridge | 3.00 | 2000.00 | 1.30 (1.20-1.40) | 1.50-2.00 |"
