from websockify.server.admission import Admission


def test_total_cap_then_refusals_then_drops():
    admission = Admission(max_connections=2)
    served = [admission.admit("a"), admission.admit("b")]
    assert all(t is not None and t.refusal is None for t in served)
    refused = [admission.admit("c") for _ in range(admission.slack)]
    assert all(t is not None and t.refusal is not None and t.refusal.status == 503 for t in refused)
    assert admission.admit("d") is None  # past the slack: closed without a word
    served[0].release()
    served[0].release()  # releasing twice counts once
    assert admission.total == 1 + admission.slack and admission.served == 1
    again = admission.admit("e")
    assert again is not None and again.refusal is None


def test_per_address_cap_and_its_release():
    admission = Admission(max_connections=100, max_per_ip=2)
    first, second = admission.admit("10.0.0.1"), admission.admit("10.0.0.1")
    third = admission.admit("10.0.0.1")
    assert third is not None and third.refusal is not None and "your address" in str(third.refusal)
    other = admission.admit("10.0.0.2")
    assert other is not None and other.refusal is None
    third.release()  # a refused ticket does not free a served slot
    assert admission.admit("10.0.0.1").refusal is not None
    first.release()
    assert admission.admit("10.0.0.1").refusal is None
    assert second is not None
