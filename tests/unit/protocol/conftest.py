"""Hypothesis profiles for the property tests of websockify.protocol.

`default` keeps `make test` quick; `fuzz` (HYPOTHESIS_PROFILE=fuzz, as `make fuzz`
sets it) runs many more examples per property. HYPOTHESIS_MAX_EXAMPLES overrides
the count of either. No deadline: other test runs share this slow machine, and a
slow example is not a bug; for the same reason the too_slow health check is off.
"""
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("default", max_examples=150, **_COMMON)
settings.register_profile("fuzz", max_examples=20_000, **_COMMON)

_profile = os.environ.get("HYPOTHESIS_PROFILE", "default")
if _profile not in ("default", "fuzz"):
    raise ValueError(f"HYPOTHESIS_PROFILE={_profile!r}: expected 'default' or 'fuzz'")
if os.environ.get("HYPOTHESIS_MAX_EXAMPLES"):
    settings.register_profile(_profile, settings.get_profile(_profile),
                              max_examples=int(os.environ["HYPOTHESIS_MAX_EXAMPLES"]))
settings.load_profile(_profile)
