from espnet_s3net.scoring.results import results_table


def test_high_low_avg_columns():
    langs = ["fr", "es", "sv-SE", "tr"]
    rows = {"xlsr": {"fr": 10.0, "es": 20.0, "sv-SE": 30.0, "tr": 50.0}}
    table = results_table(rows, {"xlsr": 95_000_000}, langs, high=["fr", "es"])
    assert "High: fr es; Low: sv-SE tr" in table
    assert "| xlsr | 95.00M | 10.0 | 20.0 | 30.0 | 50.0 | 15.0 | 40.0 | 27.5 |" in table
    # default High: the paper's three languages with the most XLSR-10 hours (fr 353, es 168, it 90)
    six = ["sv-SE", "ky", "ru", "it", "es", "fr"]
    rates = {"xlsr": {lang: 1.0 for lang in six}}
    assert "High: fr es it; Low: sv-SE ky ru" in results_table(rates, {"xlsr": 1}, six)
