"""genstudio's GPU worker: the worker contract of docs/providers.md, served on Modal
(``gpu_worker.modal_app``) and Runpod (``gpu_worker.runpod_handler``) over one engine
interface (``gpu_worker.engine``). A package of its own: it never imports genstudio.
See gpu_worker/README.md."""
