"""The public contract against a real TorchServe: answers, accuracy, batching, per-item errors."""
from __future__ import annotations

import base64
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor

import requests

from models.langid import held_out_texts
from tests.imagegen import digit_image, encode, held_out

FORMATS = [("PNG", "L"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB"), ("PNG", "RGBA"),
           ("PNG", "I;16"), ("JPEG", "CMYK"), ("PNG", "LA"), ("PNG", "P")]
SIZES = [8, 28, 64, 256, 1024]


def _post(url: str, body: bytes, content_type: str) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=60)


def test_digits_rendered_in_many_formats_sizes_and_polarities_are_classified(torchserve) -> None:
    url = f"{torchserve.inference_url}/predictions/digits"
    cases = []
    for i, (img, label) in enumerate(held_out(100, seed=11)):
        fmt, mode = FORMATS[i % len(FORMATS)]
        cases.append((encode(digit_image(img, SIZES[i % len(SIZES)], mode, dark_on_light=i % 2 == 0), fmt),
                      f"image/{fmt.lower()}", label))
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda c: _post(url, c[0], c[1]), cases))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:3]
    answers = [r.json() for r in responses]
    assert all(a["model"] == "digits" and len(a["top_k"]) == 3 for a in answers)
    correct = sum(a["top_k"][0]["label"] == str(label) for a, (_, _, label) in zip(answers, cases))
    assert correct / len(cases) >= 0.9, f"accuracy {correct}/{len(cases)}"


def test_a_few_megapixel_photo_style_digit_is_classified(torchserve) -> None:
    img, label = held_out(1, seed=2)[0]
    data = encode(digit_image(img, 2000, "RGB", dark_on_light=True), "JPEG")  # 4 Mpx
    answer = _post(f"{torchserve.inference_url}/predictions/digits", data, "image/jpeg")
    assert answer.status_code == 200, answer.text
    assert answer.json()["top_k"][0]["label"] == str(label)


def test_base64_json_envelope(torchserve) -> None:
    img, label = held_out(1, seed=4)[0]
    body = json.dumps({"image": base64.b64encode(encode(digit_image(img, 32, "L", True), "PNG")).decode()})
    answer = _post(f"{torchserve.inference_url}/predictions/digits", body.encode(), "application/json")
    assert answer.status_code == 200 and answer.json()["top_k"][0]["label"] == str(label)


def test_langid_identifies_held_out_words_and_phrases(torchserve) -> None:
    url = f"{torchserve.inference_url}/predictions/langid"
    samples = random.Random(3).sample(held_out_texts(), 140)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda s: requests.post(url, json={"text": s[0]}, timeout=60), samples))
    assert all(r.status_code == 200 for r in responses)
    answers = [r.json() for r in responses]
    assert all(a["model"] == "langid" and len(a["top_k"]) == 3 for a in answers)
    correct = sum(a["top_k"][0]["label"] == lang for a, (_, lang) in zip(answers, samples))
    assert correct / len(samples) >= 0.7, f"accuracy {correct}/{len(samples)} (chance is 1/7)"
    text = "el niño pequeño come una manzana"
    plain = requests.post(url, data=text.encode(), headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=30)
    as_json = requests.post(url, json={"text": text}, timeout=30)
    assert plain.status_code == 200 and plain.json() == as_json.json()
    assert plain.json()["top_k"][0]["label"] == "spanish"


def _batch_size_totals(metrics_url: str, model: str) -> tuple[float, float]:
    text = requests.get(f"{metrics_url}/metrics", timeout=10).text
    def value(suffix: str) -> float:
        pattern = rf'^handler_batch_size_{suffix}\{{[^}}]*ModelName="{model}"[^}}]*\}} ([0-9.eE+-]+)$'
        return sum(float(m) for m in re.findall(pattern, text, flags=re.M))
    return value("sum"), value("count")


def test_concurrent_burst_shares_batches_and_each_item_keeps_its_own_answer(torchserve) -> None:
    url = f"{torchserve.inference_url}/predictions/langid"
    texts = [t for t, _ in random.Random(9).sample(held_out_texts(), 64)]
    alone = {t: requests.post(url, json={"text": t}, timeout=30).json() for t in texts[:16]}
    items_before, calls_before = _batch_size_totals(torchserve.metrics_url, "langid")
    with ThreadPoolExecutor(32) as pool:
        burst = list(pool.map(lambda t: requests.post(url, json={"text": t}, timeout=60), texts))
    items_after, calls_after = _batch_size_totals(torchserve.metrics_url, "langid")
    assert all(r.status_code == 200 for r in burst)
    items, calls = items_after - items_before, calls_after - calls_before
    assert items == len(texts), (items, calls)
    assert calls < items, f"{items} requests took {calls} inference calls: no batching happened"
    for text, response in zip(texts, burst):
        if text in alone:
            mine = {r["label"]: r["probability"] for r in response.json()["top_k"]}
            ref = {r["label"]: r["probability"] for r in alone[text]["top_k"]}
            assert mine.keys() == ref.keys() and all(abs(mine[k] - ref[k]) <= 1e-5 for k in ref)


def test_mixed_burst_gets_200s_and_4xxs_exactly_where_expected(torchserve) -> None:
    img, _ = held_out(1, seed=8)[0]
    good_image = encode(digit_image(img, 28, "L", True), "PNG")
    cases = [
        ("digits", good_image, "image/png", 200, None),
        ("digits", b"not an image", "image/png", 400, "invalid_image"),
        ("digits", b"", "image/png", 400, "empty_input"),
        ("digits", b'{"image": "!!"}', "application/json", 400, "invalid_base64"),
        ("langid", b'{"text": "hello there"}', "application/json", 200, None),
        ("langid", b'{"text": ""}', "application/json", 400, "empty_text"),
        ("langid", b'{"text": 42}', "application/json", 400, "invalid_request"),
        ("langid", b"\xff\xfe", "text/plain", 400, "invalid_encoding"),
        ("langid", json.dumps({"text": "a" * 300}).encode(), "application/json", 413, "text_too_long"),
    ] * 4
    random.Random(1).shuffle(cases)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda c: _post(f"{torchserve.inference_url}/predictions/{c[0]}", c[1], c[2]), cases))
    for (model, _, _, status, error_type), response in zip(cases, responses):
        assert response.status_code == status, (model, error_type, response.status_code, response.text)
        body = response.json()
        if error_type is None:
            assert body["model"] == model and body["top_k"]
        else:
            assert body["error"]["type"] == error_type and body["error"]["code"] == status
            assert body["error"]["message"]


def test_frontend_runs_with_the_configured_jvm_flags(torchserve) -> None:
    """config.properties' vmargs reach the JVM: the launcher reads them from the file (no TS_* variable can)."""
    import psutil

    from stackctl import paths

    line = next(ln for ln in paths.SERVER_CONFIG.read_text().splitlines() if ln.startswith("vmargs="))
    flags = line.split("=", 1)[1].split()
    root = psutil.Process(torchserve.proc.pid)
    javas = [p for p in [root, *root.children(recursive=True)] if p.name() == "java"]
    assert len(javas) == 1, javas
    assert flags and set(flags) <= set(javas[0].cmdline())
