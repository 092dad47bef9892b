"""lb.bench.scale: the generated rules file is what `lbxdp -R` accepts (pure)."""

from __future__ import annotations

from lb.bench.scale import rules_file
from lb.config.savefmt import parse_rules


def test_rules_file_has_count_services_each_with_one_real() -> None:
    text = rules_file(7, ["10.7.2.11", "10.7.2.12"], count=600)
    lines = text.splitlines()
    assert len(lines) == 1200
    assert lines[0] == "-A -t 10.7.200.1:80 -s wlc"
    assert lines[1] == "-a -t 10.7.200.1:80 -r 10.7.2.11:80 -m -w 1"
    assert lines[-2] == "-A -t 10.7.202.100:80 -s wlc"
    vips = {line.split()[2] for line in lines if line.startswith("-A")}
    assert len(vips) == 600


def test_rules_file_parses_as_ipvsadm_save_output() -> None:
    commands = parse_rules(rules_file(7, ["10.7.2.11"], count=1000), "<bench>")
    assert len(commands) == 2000
