import logging

from espnet_s3net.log import Progress, progress


def test_progress_logs_eta_and_final_line(caplog, monkeypatch):
    clock = iter([0.0, 10.0, 12.0, 30.0])
    monkeypatch.setattr("espnet_s3net.log.time.monotonic", lambda: next(clock))
    with caplog.at_level(logging.INFO):
        p = Progress(3, "decoding test_es", interval_s=5.0)
        p.update()  # t=10: due, 1/3 in 10 s -> ETA 20 s
        p.update()  # t=12: not due
        p.update()  # t=30: last item, always logged
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["decoding test_es: 1/3 (33%), elapsed 0:00:10, ETA 0:00:20",
                     "decoding test_es: 3/3 (100%), elapsed 0:00:30, ETA 0:00:00"]


def test_progress_wrapper_yields_every_item(caplog):
    with caplog.at_level(logging.INFO):
        assert list(progress(["a", "b"], what="x", interval_s=1e9)) == ["a", "b"]
    assert caplog.records[-1].getMessage().startswith("x: 2/2 (100%)")
