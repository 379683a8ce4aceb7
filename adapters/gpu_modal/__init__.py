"""Modal web endpoints (the primary GPU provider): submit, result, cancel, health,
behind Modal's proxy auth. The contract our Modal app serves is in docs/providers.md.
"""

from genstudio.adapters.gpu_modal.provider import ModalProvider, make_modal_provider

__all__ = ["ModalProvider", "make_modal_provider"]
