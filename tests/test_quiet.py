"""Native standard error: known notices dropped, everything else kept."""

import os

from maskdet.quiet import native_stderr_filtered, native_stderr_quiet


def test_the_filter_drops_known_native_notices_and_keeps_real_errors(capfd):
    with native_stderr_filtered():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"E0000 node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool which\n")
        os.write(2, b"E0000 something that really failed\n")
    os.write(2, b"after the span\n")
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "use_unbounded_threadpool" not in err
    assert "something that really failed" in err and "after the span" in err


def test_the_quiet_span_drops_everything_and_restores_standard_error(capfd):
    with native_stderr_quiet():
        os.write(2, b"a native notice\n")
    os.write(2, b"back\n")
    assert capfd.readouterr().err == "back\n"
