import pytest

from websockify.server.admission import Admission, address_key


def test_total_cap_then_refusals_then_drops():
    admission = Admission(max_connections=2)
    served = [admission.admit("a"), admission.admit("b")]
    assert all(t is not None and t.refusal is None for t in served)
    for ticket in served:
        ticket.head_complete()  # sessions (or nearly): never evicted
    refused = [admission.admit("c") for _ in range(admission.slack)]
    assert all(t is not None and t.refusal is not None and t.refusal.status == 503 for t in refused)
    assert admission.admit("d") is None  # past the slack: closed without a word
    served[0].release()
    served[0].release()  # releasing twice counts once
    assert admission.total == 1 + admission.slack and admission.served == 1
    again = admission.admit("e")
    assert again is not None and again.refusal is None


def test_per_address_cap_closes_at_once_and_takes_nothing_from_the_pool():
    admission = Admission(max_connections=100, max_per_ip=2)
    first, second = admission.admit("10.0.0.1"), admission.admit("10.0.0.1")
    assert first is not None and second is not None
    for _ in range(1000):
        assert admission.admit("10.0.0.1") is None
    assert admission.total == 2 and admission.served == 2
    other = admission.admit("10.0.0.2")
    assert other is not None and other.refusal is None
    first.release()
    again = admission.admit("10.0.0.1")
    assert again is not None and again.refusal is None


def test_a_full_pool_evicts_the_oldest_client_still_sending_its_head():
    admission = Admission(max_connections=3)
    evicted: list[str] = []
    session = admission.admit("10.0.0.9")
    assert session is not None
    session.head_complete()
    idle = [admission.admit("10.0.0.1") for _ in range(2)]
    for n, ticket in enumerate(idle):
        assert ticket is not None
        ticket.on_evict = lambda n=n: evicted.append(f"idle {n}")
    honest = admission.admit("10.0.0.2")
    assert honest is not None and honest.refusal is None
    assert evicted == ["idle 0"] and admission.evicted is idle[0] and admission.evictions == 1
    assert idle[0] is not None and idle[0].released
    assert admission.served == 3 and admission.total == 3
    honest.head_complete()
    third = admission.admit("10.0.0.3")
    assert third is not None and third.refusal is None
    assert evicted == ["idle 0", "idle 1"]
    third.head_complete()
    # Only clients past their head left: now 503, never an eviction.
    refused = admission.admit("10.0.0.4")
    assert refused is not None and refused.refusal is not None and admission.evictions == 2
    assert not session.released and not honest.released and not third.released


def test_every_served_ticket_that_sent_its_head_is_safe():
    admission = Admission(max_connections=2)
    a, b = admission.admit("x"), admission.admit("y")
    assert a is not None and b is not None
    a.head_complete()
    b.head_complete()
    refused = admission.admit("z")
    assert refused is not None and refused.refusal is not None
    assert admission.evictions == 0 and not a.released and not b.released


def test_a_released_ticket_is_not_evicted():
    admission = Admission(max_connections=1)
    gone = admission.admit("x")
    assert gone is not None
    gone.on_evict = lambda: pytest.fail("evicted after its release")
    gone.release()
    assert admission.waiting == 0
    assert admission.admit("y").refusal is None  # type: ignore[union-attr]


@pytest.mark.parametrize("ip,key", [
    ("192.0.2.1", "192.0.2.1"),
    ("", ""),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::1", "::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack listener's IPv4 client
    ("fe80::1%eth0", "fe80::/64"),
    ("not:an:address", "not:an:address"),
])
def test_address_key(ip, key):
    assert address_key(ip) == key


def test_ipv6_clients_are_counted_by_their_64():
    admission = Admission(max_connections=100, max_per_ip=2)
    assert admission.admit("2001:db8::1") is not None
    assert admission.admit("2001:db8::ffff:2") is not None
    assert admission.admit("2001:db8::3") is None  # the same /64
    assert admission.admit("2001:db8:0:1::3") is not None  # the next /64
    assert admission.admit("::ffff:192.0.2.1") is not None
    assert admission.admit("192.0.2.1") is not None
    assert admission.admit("192.0.2.1") is None


def test_a_client_named_by_a_trusted_proxy_is_counted_at_its_own_address():
    admission = Admission(100, max_per_ip=1)
    ticket = admission.admit("127.0.0.1")  # the proxy's connection
    assert ticket is not None
    assert admission.move(ticket, "203.0.113.7")
    assert ticket.key == "203.0.113.7" and not admission.over_address_cap("127.0.0.1")
    assert admission.over_address_cap("203.0.113.7")
    other = admission.admit("127.0.0.1")
    assert other is not None and not admission.move(other, "203.0.113.7")  # that client is at its cap
    assert other.key == "127.0.0.1"
    ticket.release()
    assert not admission.over_address_cap("203.0.113.7")
