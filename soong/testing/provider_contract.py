"""A contract test suite any Provider plugin can run against its own test double.

Subclass :class:`ProviderContract` in a test module, give it a ``provider``
fixture (a ready provider whose account has the SSH key named by
:meth:`ProviderContract.launch_request`) and, optionally, the hooks to exhaust
capacity or make the next launch fail ambiguously; pytest collects the
inherited ``test_*`` methods::

    class TestMyProvider(ProviderContract):
        @pytest.fixture
        def provider(self, my_cloud_double):
            return MyProvider(make_context(my_cloud_double))

        def launch_request(self, provider):
            return LaunchRequest("small-gpu", "region-1", "my-key", "contract")

A hook left unimplemented skips the tests that need it. The optional firewall
capability (:meth:`~soong.core.interfaces.Provider.inbound_firewall`) is checked
only when the provider offers it.
"""

from __future__ import annotations

import pytest

from soong.core.errors import ApiError, ApiNotFoundError, CapacityError
from soong.core.interfaces import Provider
from soong.core.types import INSTANCE_STATUSES, FileSystem, Instance, InstanceType, LaunchRequest, Region, SshKey


class ProviderContract:
    """The behaviour every :class:`~soong.core.interfaces.Provider` must show."""

    # -- what a subclass provides ------------------------------------------------------------
    @pytest.fixture
    def provider(self) -> Provider:
        """A provider instance talking to a test double (override this fixture)."""
        raise NotImplementedError("override the 'provider' fixture")

    def launch_request(self, provider: Provider) -> LaunchRequest:
        """A request that launches successfully on the double (override)."""
        raise NotImplementedError

    def exhaust_capacity(self, provider: Provider, request: LaunchRequest) -> None:
        """Make the double refuse ``request`` for lack of capacity (optional hook)."""
        pytest.skip("no capacity hook")

    def fail_next_launch_ambiguously(self, provider: Provider) -> None:
        """Make the double create the next instance but fail the answer (optional hook)."""
        pytest.skip("no ambiguous-launch hook")

    def open_inbound_port(self, provider: Provider, port: int) -> None:
        """Make the double's inbound firewall let TCP ``port`` in from anywhere (optional hook)."""
        pytest.skip("no firewall hook")

    # -- the contract ------------------------------------------------------------------------------
    def test_has_a_valid_name(self, provider):
        assert isinstance(provider, Provider)
        assert isinstance(provider.name, str) and provider.name

    def test_instance_types_are_complete(self, provider):
        types = provider.list_instance_types()
        assert types and all(isinstance(t, InstanceType) for t in types)
        assert len({t.name for t in types}) == len(types)
        for itype in types:
            assert itype.price_cents_per_hour >= 0 and itype.gpu_count >= 0 and itype.gpu_memory_gib >= 0
            assert all(isinstance(r, Region) and r.name for r in itype.regions_with_capacity)
            assert itype.architecture in ("x86_64", "arm64")
        assert any(t.has_capacity() for t in types)

    def test_image_family_and_images_are_typed(self, provider):
        from soong.core.images import ImageFamily, MachineImage

        family = provider.image_family()
        if family is None:
            pytest.skip("the provider does not choose machine images")
        assert isinstance(family, ImageFamily) and family.architectures
        images = provider.machine_images()
        assert all(isinstance(i, MachineImage) and i.id and i.region for i in images)
        assert any(i.family == family.name for i in images), "the configured family has no image"

    def test_ssh_keys_and_file_systems_are_typed(self, provider):
        assert all(isinstance(k, SshKey) and k.name for k in provider.list_ssh_keys())
        assert all(isinstance(f, FileSystem) and f.region for f in provider.list_file_systems())

    def test_launch_get_list_terminate(self, provider):
        request = self.launch_request(provider)
        inst = provider.launch(request)
        assert isinstance(inst, Instance) and inst.id
        assert inst.status in INSTANCE_STATUSES and inst.is_billable
        assert (inst.instance_type, inst.region) == (request.instance_type, request.region)
        assert provider.get_instance(inst.id).id == inst.id
        assert inst.id in [i.id for i in provider.list_instances()]
        ended = provider.terminate([inst.id])
        assert [i.id for i in ended] == [inst.id]
        assert ended[0].status in ("terminating", "terminated")
        try:
            after = provider.get_instance(inst.id)
        except ApiNotFoundError:
            return
        assert after.status in ("terminating", "terminated")

    def test_two_launches_of_one_request_are_two_distinct_instances(self, provider):
        request = self.launch_request(provider)
        first, second = provider.launch(request), provider.launch(request)
        assert first.id != second.id
        assert first.name != second.name  # unique launch names: each launch can be found again
        provider.terminate([first.id, second.id])

    def test_launch_name_carries_the_token(self, provider):
        import dataclasses

        request = dataclasses.replace(self.launch_request(provider), token="c0ffee00beef")
        inst = provider.launch(request)
        assert inst.name and inst.name.endswith("c0ffee00beef")
        provider.terminate([inst.id])

    def test_unknown_instance_is_not_found(self, provider):
        with pytest.raises(ApiNotFoundError):
            provider.get_instance("no-such-instance-0000")

    def test_terminate_nothing(self, provider):
        assert provider.terminate([]) == []

    def test_terminating_an_unknown_instance_never_reports_it_billing(self, provider):
        try:
            result = provider.terminate(["no-such-instance-0000"])
        except ApiError:
            return
        assert all(not i.is_billable for i in result)

    def test_no_capacity_is_a_capacity_error(self, provider):
        request = self.launch_request(provider)
        self.exhaust_capacity(provider, request)
        before = {i.id for i in provider.list_instances()}
        with pytest.raises(CapacityError):
            provider.launch(request)
        assert {i.id for i in provider.list_instances()} == before

    def test_ambiguous_launch_yields_exactly_one_instance(self, provider):
        request = self.launch_request(provider)
        before = {i.id for i in provider.list_instances()}
        self.fail_next_launch_ambiguously(provider)
        inst = provider.launch(request)
        new = {i.id for i in provider.list_instances()} - before
        assert new == {inst.id}
        provider.terminate([inst.id])

    # -- the optional firewall capability ------------------------------------------------------------
    def test_inbound_firewall_is_typed_when_offered(self, provider):
        from soong.core.firewall import FirewallChange, InboundFirewall

        region = self.launch_request(provider).region
        found = provider.inbound_firewall(region)
        if found is None:
            assert provider.ssh_only_change(region) is None  # nothing to change without a firewall to read
            pytest.skip("the provider cannot read its inbound firewall")
        assert isinstance(found, InboundFirewall) and found.scope
        assert all(isinstance(o, str) and o for o in found.openings())
        change = provider.ssh_only_change(region)
        if found.ssh_only:
            assert change is None
        elif change is not None:
            assert isinstance(change, FirewallChange) and change.effect
            assert InboundFirewall(change.before.scope, change.rules).ssh_only

    def test_ssh_only_change_closes_what_was_open(self, provider):
        region = self.launch_request(provider).region
        if provider.inbound_firewall(region) is None:
            pytest.skip("the provider cannot read its inbound firewall")
        self.open_inbound_port(provider, 8000)
        opened = provider.inbound_firewall(region)
        assert any("8000" in o for o in opened.openings())
        change = provider.ssh_only_change(region)
        if change is None:
            pytest.skip("the provider cannot change its inbound firewall")
        assert any("8000" in o for o in change.removed())
        after = provider.apply_firewall_change(change)
        assert after.ssh_only and provider.inbound_firewall(region).ssh_only
        assert provider.ssh_only_change(region) is None
