from ipaddress import IPv4Address as A

from lb.datapath.iptables import restore_script
from lb.model import Protocol, ServiceKey


def test_restore_script_queues_each_service_in_its_own_chain():
    script = restore_script(
        [ServiceKey(Protocol.UDP, A("10.0.0.100"), 53), ServiceKey(Protocol.TCP, A("10.0.0.100"), 80)], queue=7
    )
    assert script.splitlines() == [
        "*mangle",
        ":LBXDP - [0:0]",
        "-F LBXDP",
        "-A LBXDP -d 10.0.0.100/32 -p tcp --dport 80 -j NFQUEUE --queue-num 7",
        "-A LBXDP -d 10.0.0.100/32 -p udp --dport 53 -j NFQUEUE --queue-num 7",
        "COMMIT",
    ]


def test_port_zero_service_queues_every_port():
    script = restore_script([ServiceKey(Protocol.TCP, A("10.0.0.100"), 0)], queue=1)
    assert "-A LBXDP -d 10.0.0.100/32 -p tcp -j NFQUEUE --queue-num 1" in script


def test_queue_bypass_is_a_choice_and_off_by_default():
    key = ServiceKey(Protocol.TCP, A("10.0.0.100"), 80)
    assert "--queue-bypass" not in restore_script([key], queue=1)
    assert "-A LBXDP -d 10.0.0.100/32 -p tcp --dport 80 -j NFQUEUE --queue-num 1 --queue-bypass" in restore_script(
        [key], queue=1, bypass=True).splitlines()
