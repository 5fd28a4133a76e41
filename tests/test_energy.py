"""Energy accounting: NVML and RAPL against fakes, the runner, power logs, FLOP estimates, CLI."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import HANG_GUARD_S

from advscale.energy import (
    EnergyConstants,
    NvmlSampler,
    PowerMonitor,
    RaplSampler,
    energy_from_log,
    energy_payload,
    estimate_from_flops,
    get_accelerator,
    parse_power_log,
    run_with_energy,
)
from advscale.energy.report import DeviceEnergy, trapezoid_j
from advscale.errors import AdvscaleError
from advscale.records import loads_all

ADVSCALE = [sys.executable, "-m", "advscale"]
J_PER_KWH = 3.6e6


# ------------------------------------------------------------------------------------------
# Fakes: an NVML module object and a powercap sysfs tree


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """The slice of pynvml advscale uses. ``power(t)`` in W; the energy counter (mJ), where a
    GPU has one, is the exact integral of power from t = 0 (``energy(t)`` in J)."""

    NVMLError = FakeNVMLError

    def __init__(self, gpus, clock=time.monotonic, init_error=None):
        self.gpus, self.clock, self.init_error = gpus, clock, init_error
        self.shutdowns = 0

    def nvmlInit(self):
        if self.init_error:
            raise FakeNVMLError(self.init_error)

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.gpus[h]["name"].encode()  # older pynvml returns bytes

    def nvmlDeviceGetUUID(self, h):
        return self.gpus[h]["uuid"]

    def nvmlDeviceGetPowerUsage(self, h):
        return int(round(self.gpus[h]["power"](self.clock()) * 1000))  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        energy = self.gpus[h].get("energy")
        if energy is None:
            raise FakeNVMLError("Not Supported")
        return int(round(energy(self.clock()) * 1000))  # mJ


def fake_powercap(root: Path, packages=(("intel-rapl:0", 1_000_000), ("intel-rapl:1", 0)),
                  max_uj: int = 10_000_000) -> Path:
    """A powercap tree: packages, a core subdomain, psys and an MMIO duplicate (ignored)."""
    def domain(name: str, label: str, uj: int) -> None:
        d = root / name
        d.mkdir(parents=True)
        (d / "name").write_text(label + "\n")
        (d / "energy_uj").write_text(f"{uj}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")

    for i, (name, uj) in enumerate(packages):
        domain(name, f"package-{i}", uj)
    domain("intel-rapl:0:0", "core", 5)
    domain("intel-rapl:9", "psys", 7)
    domain("intel-rapl-mmio:0", "package-0", 11)
    return root


def set_uj(root: Path, domain: str, uj: int) -> None:
    (root / domain / "energy_uj").write_text(f"{uj}\n")


# ------------------------------------------------------------------------------------------
# NVML


def two_gpus(clock):
    return FakeNvml([
        {"name": "Fake H100", "uuid": "GPU-aaaa", "power": lambda t: 100 + 10 * t,
         "energy": lambda t: 100 * t + 5 * t * t},
        {"name": "Fake A100", "uuid": "GPU-bbbb", "power": lambda t: 200.0},  # no counter
    ], clock=clock)


def test_nvml_energy_counter_and_power_integration_against_a_fake():
    clock = FakeClock()
    nv = two_gpus(clock)
    mon = PowerMonitor(interval_s=1.0, nvml=nv, rapl_root=None, clock=clock)
    assert mon.open() == {"rapl": "disabled"}
    mon.start(thread=False)
    for t in range(1, 10):
        clock.t = float(t)
        mon.sample()
    clock.t = 10.0
    devices = mon.stop()
    assert mon.duration_s == 10.0 and nv.shutdowns == 1
    g0, g1 = devices
    assert (g0.device, g0.name, g0.basis) == ("gpu:0", "Fake H100", "measured")
    assert "TotalEnergyConsumption" in g0.method
    assert g0.energy_kwh * J_PER_KWH == pytest.approx(1500.0)  # ∫(100 + 10t) dt over 10 s
    assert g0.mean_power_w == pytest.approx(150.0) and g0.max_power_w == pytest.approx(200.0)
    assert g1.basis == "measured" and "PowerUsage" in g1.method
    assert g1.energy_kwh * J_PER_KWH == pytest.approx(2000.0)  # 200 W x 10 s, trapezoid
    assert g1.samples == 11


def test_nvml_visible_devices_and_failures():
    clock = FakeClock()
    s = NvmlSampler(two_gpus(clock), visible="1")
    assert s.open() is None and [g.index for g in s.gpus] == [1]
    s = NvmlSampler(two_gpus(clock), visible="GPU-aaaa")
    assert s.open() is None and [g.name for g in s.gpus] == ["Fake H100"]
    assert "no visible GPU" in NvmlSampler(two_gpus(clock), visible="").open()
    broken = FakeNvml([], init_error="Driver Not Loaded")
    assert "Driver Not Loaded" in NvmlSampler(broken).open()
    assert "no visible GPU" in NvmlSampler(FakeNvml([])).open()


# ------------------------------------------------------------------------------------------
# RAPL


def test_rapl_packages_wraparound_against_a_fake_sysfs(tmp_path):
    root = fake_powercap(tmp_path / "powercap")
    clock = FakeClock()
    mon = PowerMonitor(interval_s=1.0, nvml=False, rapl_root=root, clock=clock)
    assert mon.open() == {"nvml": "disabled"}
    assert [d.path.name for d in mon.rapl.domains] == ["intel-rapl:0", "intel-rapl:1"]
    mon.start(thread=False)  # package 0 at 1 J, package 1 at 0 J
    clock.t = 1.0
    set_uj(root, "intel-rapl:0", 5_000_000)  # +4 J
    set_uj(root, "intel-rapl:1", 3_000_000)  # +3 J
    mon.sample()
    clock.t = 2.0
    set_uj(root, "intel-rapl:0", 2_000_000)  # wrapped at 10 J: +7 J
    devices = mon.stop()
    p0, p1 = devices
    assert (p0.device, p0.name, p0.kind, p0.basis) == ("cpu-package:0", "package-0", "cpu",
                                                      "measured")
    assert "energy_uj" in p0.method and "wrap" in p0.method
    assert p0.energy_kwh * J_PER_KWH == pytest.approx(11.0)
    assert p0.max_power_w == pytest.approx(7.0) and p0.mean_power_w == pytest.approx(5.5)
    assert p1.energy_kwh * J_PER_KWH == pytest.approx(3.0)


def test_rapl_unavailable_reasons(tmp_path, monkeypatch):
    assert "does not exist" in RaplSampler(tmp_path / "none").open()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no RAPL package domain" in RaplSampler(empty).open()
    root = fake_powercap(tmp_path / "denied")
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    why = RaplSampler(root).open()
    assert "not readable" in why and "intel-rapl:0" in why


# ------------------------------------------------------------------------------------------
# The runner (in-process, real child processes)


def test_runner_measures_with_fakes_streams_bytes_and_returns_exit_code(tmp_path):
    root = fake_powercap(tmp_path / "powercap")
    nv = FakeNvml([{"name": "Fake H100", "uuid": "GPU-aaaa", "power": lambda t: 250.0,
                    "energy": lambda t: 250.0 * t}])
    payload_bytes = bytes(range(256)) * 64 + b"no newline at the end"
    child = textwrap.dedent(f"""
        import sys
        open({str(root / 'intel-rapl:0' / 'energy_uj')!r}, 'w').write('6000000')  # +5 J
        sys.stdout.buffer.write({payload_bytes!r})
        sys.exit(5)
    """)
    out = io.BytesIO()
    result = run_with_energy([sys.executable, "-c", child], out=out, interval_s=0.05,
                             nvml=nv, rapl_root=root)
    assert result.exit_code == 5
    assert out.getvalue() == payload_bytes + b"\n"  # byte for byte, then a line break
    p = result.payload
    assert p["basis"] == "measured" and p["measured"] is True and "notice" not in p
    assert p["exit_code"] == 5 and p["mode"] == "run" and p["cpu_s"] > 0
    gpu = next(d for d in p["devices"] if d["kind"] == "gpu")
    cpu = next(d for d in p["devices"] if d["kind"] == "cpu")
    assert gpu["energy_kwh"] * J_PER_KWH == pytest.approx(250.0 * p["duration_s"], rel=0.01)
    assert cpu["energy_kwh"] * J_PER_KWH == pytest.approx(5.0)
    assert p["it_energy_kwh"] == pytest.approx(gpu["energy_kwh"] + cpu["energy_kwh"])
    assert p["estimated_energy_kwh"] == 0.0
    assert nv.shutdowns == 1


def test_runner_without_counters_is_labelled_estimated(tmp_path):
    out = io.BytesIO()
    r = run_with_energy([sys.executable, "-c", "print('hi')"], out=out, nvml=False,
                        rapl_root=tmp_path / "no-powercap", constants=EnergyConstants(pue=2.0))
    p = r.payload
    assert out.getvalue() == b"hi\n" and r.exit_code == 0
    assert p["basis"] == "estimated" and p["measured"] is False
    assert p["notice"].startswith("ESTIMATED, NOT MEASURED")
    (cpu,) = p["devices"]
    assert cpu["basis"] == "estimated" and "10 W per busy core" in cpu["method"]
    assert cpu["energy_kwh"] * J_PER_KWH == pytest.approx(p["cpu_s"] * 10.0)
    assert p["facility_energy_kwh"] == pytest.approx(2.0 * p["it_energy_kwh"])
    assert set(p["unavailable"]) == {"nvml", "rapl"}


def test_runner_streams_output_while_the_child_runs(tmp_path):
    """The child waits for proof that its first line was passed on before it exits."""
    flag = tmp_path / "seen"
    child = textwrap.dedent(f"""
        import os, sys, time
        print('ready', flush=True)
        deadline = time.time() + 20
        while not os.path.exists({str(flag)!r}):
            if time.time() > deadline:
                sys.exit(1)
            time.sleep(0.01)
        print('done')
    """)

    class Watcher(io.BytesIO):
        def write(self, b):
            if b"ready" in b:
                flag.touch()
            return super().write(b)

    out = Watcher()
    r = run_with_energy([sys.executable, "-c", child], out=out, nvml=False, rapl_root=None)
    assert r.exit_code == 0 and out.getvalue() == b"ready\ndone\n"


def test_runner_requires_measured_before_starting(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(AdvscaleError, match="no power counter"):
        run_with_energy([sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                        out=io.BytesIO(), nvml=False, rapl_root=None, require_measured=True)
    assert not marker.exists()
    with pytest.raises(AdvscaleError, match="cannot run"):
        run_with_energy(["/no/such/program"], out=io.BytesIO(), nvml=False, rapl_root=None)
    with pytest.raises(AdvscaleError, match="no command"):
        run_with_energy([], out=io.BytesIO())


# ------------------------------------------------------------------------------------------
# nvidia-smi power logs: hand-computed figures

LOG = """timestamp, power.draw [W]
2024/01/15 10:00:00.000, 200.00 W
2024/01/15 10:30:00.000, 300.00 W
2024/01/15 11:00:00.000, 400.00 W
"""


def test_from_log_hand_computed_kwh_cost_and_co2(tmp_path):
    log = tmp_path / "power.csv"
    log.write_text(LOG)
    devices, duration, extra = energy_from_log(log)
    assert duration == 3600.0 and extra["interval_s"] == 1800.0
    # trapezoid: 0.5 h x 250 W + 0.5 h x 350 W = 300 Wh
    assert devices[0].energy_kwh == pytest.approx(0.3)
    assert devices[0].basis == "measured" and "nvidia-smi" in devices[0].method
    p = energy_payload(devices, duration, "log", EnergyConstants(), extra)
    assert p["basis"] == "measured"
    assert p["it_energy_kwh"] == pytest.approx(0.3)
    assert p["facility_energy_kwh"] == pytest.approx(0.3 * 1.58)  # 0.474 kWh
    assert p["cost_usd"] == pytest.approx(0.474 * 0.12)  # $0.05688
    assert p["co2_kg"] == pytest.approx(0.474 * 0.5663)  # 0.2684262 kg
    assert "Uptime Institute" in p["assumptions"]["pue"]
    assert "ML CO2 Impact" in p["assumptions"]["gco2_per_kwh"]


def test_from_log_several_gpus_nounits_and_missing_readings():
    # nounits, an index column, one [N/A] reading, GPUs interleaved
    text = ("timestamp, index, power.draw [W]\n"
            "2024/01/15 10:00:00.000, 0, 100\n2024/01/15 10:00:00.000, 1, 50\n"
            "2024/01/15 10:00:10.000, 0, 100\n2024/01/15 10:00:10.000, 1, [N/A]\n"
            "2024/01/15 10:00:20.000, 0, 100\n2024/01/15 10:00:20.000, 1, 50\n")
    series, skipped = parse_power_log(text.splitlines())
    assert skipped == 1 and sorted(series) == ["0", "1"]
    assert trapezoid_j(series["0"]) == pytest.approx(2000.0)
    assert trapezoid_j(series["1"]) == pytest.approx(1000.0)
    # no index column: rows sharing a timestamp are different GPUs
    same = ("timestamp, power.draw [W]\n2024/01/15 10:00:00.000, 100.0 W\n"
            "2024/01/15 10:00:00.000, 60.0 W\n2024/01/15 10:00:01.000, 100.0 W\n"
            "2024/01/15 10:00:01.000, 60.0 W\n")
    series, _ = parse_power_log(same.splitlines())
    assert [trapezoid_j(series[g]) for g in ("0", "1")] == [100.0, 60.0]
    # distinct timestamps, two GPUs round-robin (gpus=2)
    rr = ("timestamp, power.draw.instant [W]\n2024/01/15 10:00:00.000, 10 W\n"
          "2024/01/15 10:00:00.010, 20 W\n2024/01/15 10:00:01.000, 10 W\n"
          "2024/01/15 10:00:01.010, 20 W\n")
    series, _ = parse_power_log(rr.splitlines(), gpus=2)
    assert trapezoid_j(series["0"]) == pytest.approx(10.0)
    assert trapezoid_j(series["1"]) == pytest.approx(20.0)


@pytest.mark.parametrize("text, message", [
    ("", "empty power log"),
    ("when, power.draw [W]\n", "no 'timestamp' column"),
    ("timestamp, temperature.gpu\n2024/01/15 10:00:00.000, 50\n", "no 'power.draw' column"),
    ("timestamp, power.draw [W]\nyesterday, 100 W\n", ":2: unrecognised timestamp"),
    ("timestamp, power.draw [W]\n2024/01/15 10:00:00.000, [N/A]\n", "no power readings"),
    ("timestamp, power.draw [W]\n2024/01/15 10:00:01.000, 1 W\n2024/01/15 10:00:00.000, 1 W\n",
     "backwards"),
])
def test_from_log_errors(tmp_path, text, message):
    log = tmp_path / "bad.csv"
    log.write_text(text)
    with pytest.raises(AdvscaleError, match=message):
        energy_from_log(log)


# ------------------------------------------------------------------------------------------
# Estimates from FLOPs


def test_estimate_from_flops_hand_computed():
    devices, gpu_s, extra = estimate_from_flops(1e21, "h100", utilization=0.4)
    expect_s = 1e21 / (989.4e12 * 0.4)
    assert gpu_s == pytest.approx(expect_s) and extra["gpu_hours"] == pytest.approx(expect_s / 3600)
    (dev,) = devices
    assert dev.basis == "estimated" and "989.4 TFLOP/s bf16" in dev.method and "700 W" in dev.method
    assert dev.energy_kwh == pytest.approx(expect_s * 700 / J_PER_KWH)  # ≈ 491.3 kWh
    p = energy_payload(devices, gpu_s, "flops", EnergyConstants(), extra)
    assert p["basis"] == "estimated" and p["measured"] is False and "notice" in p
    assert p["cost_usd"] == pytest.approx(dev.energy_kwh * 1.58 * 0.12)
    assert get_accelerator("A100").name == "a100-sxm"
    with pytest.raises(AdvscaleError, match="known: .*h100"):
        get_accelerator("tpu-v9")
    with pytest.raises(AdvscaleError, match="no tf32"):
        estimate_from_flops(1e18, "v100", precision="tf32")
    with pytest.raises(AdvscaleError, match="utilization"):
        estimate_from_flops(1e18, "h100", utilization=1.5)


def test_constants_validate_and_cite_sources():
    c = EnergyConstants()
    assert (c.pue, c.usd_per_kwh, c.gco2_per_kwh) == (1.58, 0.12, 566.3)
    assert "given on the command line" in EnergyConstants(pue=1.1).sources()["pue"]
    with pytest.raises(AdvscaleError, match="PUE"):
        EnergyConstants(pue=0.9)
    mixed = energy_payload(
        [DeviceEnergy("gpu:0", "gpu", 1.0, "measured", "NVML"),
         DeviceEnergy("cpu", "cpu", 0.5, "estimated", "10 W per core")], 10.0, "run", c)
    assert mixed["basis"] == "mixed" and mixed["notice"].startswith("PARTLY ESTIMATED")
    assert mixed["measured_energy_kwh"] == 1.0 and mixed["estimated_energy_kwh"] == 0.5


# ------------------------------------------------------------------------------------------
# CLI as a real process: pass-through, exit codes, signals


def test_cli_energy_passes_stdout_and_exit_code_and_labels_estimate():
    body = bytes(range(256)) * 4 + b"\nlast line\n"
    code = f"import sys; sys.stdout.buffer.write({body!r}); sys.exit(4)"
    p = subprocess.run([*ADVSCALE, "energy", "--no-nvml", "--no-rapl", "--",
                        sys.executable, "-c", code], capture_output=True, timeout=HANG_GUARD_S)
    assert p.returncode == 4
    assert p.stdout.startswith(body)
    rest = p.stdout[len(body):]
    (rec,) = loads_all(rest.decode())
    assert rec["kind"] == "energy" and rec["basis"] == "estimated" and rec["measured"] is False
    assert rec["exit_code"] == 4 and rec["command"][0] == sys.executable
    for key in ("duration_s", "cpu_s", "it_energy_kwh", "facility_energy_kwh", "cost_usd",
                "co2_kg"):
        assert isinstance(rec[key], float)
    assert b"ESTIMATED" in p.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_energy_forwards_signals_and_still_writes_the_record(sig):
    child = textwrap.dedent("""
        import signal, sys, time
        def stop(signum, frame):
            print('child got', signal.Signals(signum).name, flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        print('ready', flush=True)
        time.sleep(30)
        sys.exit(1)
    """)
    proc = subprocess.Popen([*ADVSCALE, "energy", "--no-nvml", "--no-rapl", "--",
                             sys.executable, "-c", child], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 7, err.decode()
    assert out.startswith(f"child got {sig.name}\n".encode())
    rec = json.loads(out.decode().splitlines()[-1])
    assert rec["kind"] == "energy" and rec["signals"] == [sig.name] and rec["exit_code"] == 7


def test_cli_from_log_to_file_and_flops_estimate(tmp_path):
    from typer.testing import CliRunner

    from advscale.cli.main import app

    runner = CliRunner()
    log = tmp_path / "power.csv"
    log.write_text(LOG)
    out = tmp_path / "energy.jsonl"
    r = runner.invoke(app, ["energy", "--from-log", str(log), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    (rec,) = loads_all(out.read_text())
    assert rec["mode"] == "log" and rec["it_energy_kwh"] == pytest.approx(0.3)
    assert rec["cost_usd"] == pytest.approx(0.3 * 1.58 * 0.12)
    r = runner.invoke(app, ["energy", "--flops", "1e21", "--device", "h100", "--pue", "1.1"])
    assert r.exit_code == 0, r.output
    (rec,) = loads_all(r.stdout)
    assert rec["basis"] == "estimated" and rec["pue"] == 1.1
    assert rec["gpu_hours"] == pytest.approx(1e21 / (989.4e12 * 0.4) / 3600)


@pytest.mark.parametrize("args, message", [
    ([], "exactly one of"),
    (["--flops", "1e20", "--from-log", "x.csv"], "exactly one of"),
    (["--flops", "1e20"], "hardware it ran on"),
    (["--flops", "lots", "--device", "h100"], "not a number"),
    (["--flops", "1e20", "--device", "h100", "--require-measured"], "not a measurement"),
    (["--from-log", "/no/such.csv"], "no such power log"),
    (["--require-measured", "--no-nvml", "--no-rapl", "--", "true"], "no power counter"),
    (["--pue", "0.5", "--flops", "1e20", "--device", "h100"], "PUE"),
])
def test_cli_energy_bad_input_is_one_line_error(args, message):
    from typer.testing import CliRunner

    from advscale.cli.main import app

    r = CliRunner().invoke(app, ["energy", *args])
    assert r.exit_code != 0 and r.stdout == ""
    assert "advscale: error:" in r.stderr and message in r.stderr


def test_energy_and_count_flops_cli_modules_do_not_import_torch():
    code = ("import sys, advscale.cli.energy, advscale.cli.count_flops, advscale.energy; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=HANG_GUARD_S).returncode == 0


def test_ctrl_c_at_a_terminal_reaches_the_child_once():
    """Ctrl-C typed at a terminal signals the whole foreground group: no duplicate SIGINT."""
    import pty

    child = textwrap.dedent("""
        import signal, sys, time
        count = 0
        def on_int(signum, frame):
            global count
            count += 1
        signal.signal(signal.SIGINT, on_int)
        print('ready', flush=True)
        deadline = time.time() + 20
        while count == 0 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # time for a duplicate to arrive
        print(f'child got SIGINT {count} times', flush=True)
        sys.exit(7)
    """)
    argv = [*ADVSCALE, "energy", "--no-nvml", "--no-rapl", "--", sys.executable, "-c", child]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a new session with the pty as its controlling terminal
        os.execv(argv[0], argv)
    output = b""
    try:
        deadline = time.time() + 30
        while b"ready" not in output and time.time() < deadline:
            output += os.read(fd, 4096)
        os.write(fd, b"\x03")  # Ctrl-C
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace").replace("\r\n", "\n")
    assert "child got SIGINT 1 times" in text, text
    assert os.waitstatus_to_exitcode(status) == 7
    rec = next(json.loads(line) for line in text.splitlines() if line.startswith('{"kind"'))
    assert rec["signals"] == ["SIGINT"] and rec["exit_code"] == 7


def test_runner_counter_that_never_reads_falls_back_to_an_estimate():
    def fail(t):
        raise FakeNVMLError("GPU is lost")

    nv = FakeNvml([{"name": "Flaky", "uuid": "GPU-cccc", "power": fail}])
    r = run_with_energy([sys.executable, "-c", "pass"], out=io.BytesIO(), nvml=nv,
                        rapl_root=None, interval_s=0.05)
    p = r.payload
    assert p["basis"] == "estimated" and [d["device"] for d in p["devices"]] == ["cpu"]
    assert p["unavailable"]["nvml"] == "no GPU reading succeeded during the run"


def test_estimate_from_flops_on_cpus_hand_computed():
    """A CPU-trained run can be estimated afterwards: TDP-based, labelled, fp32 by default."""
    devices, core_s, extra = estimate_from_flops(1e15, "cpu", utilization=0.5)
    assert extra["precision"] == "fp32" and devices[0].kind == "cpu"
    assert core_s == pytest.approx(1e15 / (96e9 * 0.5))
    assert devices[0].energy_kwh == pytest.approx(core_s * 10.0 / 3.6e6)
    _, _, extra = estimate_from_flops(1e18, "epyc-9654")
    assert extra["peak_flops_per_s"] == pytest.approx(96 * 2.4e9 * 32)
    assert "TDP" in devices[0].method and devices[0].basis == "estimated"


def test_energy_flops_cli_on_cpu_uses_cpu_w_per_core():
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "advscale", "energy", "--flops", "1e15",
                        "--device", "cpu", "--cpu-w-per-core", "5"], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["basis"] == "estimated" and rec["devices"][0]["kind"] == "cpu"
    assert rec["board_power_w"] == 5.0 and rec["precision"] == "fp32"
