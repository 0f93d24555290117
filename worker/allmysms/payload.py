"""Build the AllMySMS sendSms flux (``smsData``) from a validated request: the workers' name for
:mod:`producers.payload`, which producers share to build the same flux for the gateway."""

from __future__ import annotations

from producers.payload import DATE_FORMAT, PROVIDER_TIMEZONE, build_flux, build_fluxes


__all__ = ["DATE_FORMAT", "PROVIDER_TIMEZONE", "build_flux", "build_fluxes"]
