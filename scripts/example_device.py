"""The ``--device`` option of the example scripts: one definition, and a bad device as a usage error."""
import gpunet as gn


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto or cuda-emu")


def use_device(parser, device: str) -> None:
    """Make ``device`` current; one that cannot be used ends the script with the reason (no traceback)."""
    try:
        gn.set_device(device)
    except gn.DeviceError as exc:
        parser.error(f"--device: {exc}")
