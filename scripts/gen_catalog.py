#!/usr/bin/env python3
"""Generate the sample catalog of a plumbing/heating wholesaler (Sanitär/Heizung).

Default: writes the committed sample catalog (data/catalog/*.csv, a few hundred products, German
names with umlauts and ß). Output is deterministic: running it twice gives identical files, so the
committed files can be checked with `git diff` after a change to this script.

`--count N --out DIR` writes a large synthetic catalog (e.g. 100,000 products) for the search
benchmark: the sample families multiplied by invented manufacturers and series. Also deterministic.

Format: see docs/CATALOG.md. Python 3 standard library only.
"""

import argparse
import csv
import os
import random
import sys

HEADER = [
    "article_no",
    "name",
    "category",
    "size",
    "material",
    "connection",
    "pressure",
    "angle",
    "unit",
    "price_eur",
    "synonyms",
]

# Inch sizes: label used in names, canonical size text, price factor.
INCH = {
    "3/8": ('3/8"', "3/8 Zoll", 0.8),
    "1/2": ('1/2"', "1/2 Zoll", 1.0),
    "3/4": ('3/4"', "3/4 Zoll", 1.35),
    "1": ('1"', "1 Zoll", 1.9),
    "1 1/4": ('1 1/4"', "1 1/4 Zoll", 2.8),
    "1 1/2": ('1 1/2"', "1 1/2 Zoll", 3.6),
    "2": ('2"', "2 Zoll", 5.2),
}
MM_FACTOR = {12: 0.8, 15: 1.0, 18: 1.2, 22: 1.5, 28: 2.1, 35: 3.2, 42: 4.4, 54: 6.0}

MATERIAL_FACTOR = {
    "Messing": 1.0,
    "Rotguss": 1.25,
    "Edelstahl": 1.9,
    "verzinkt": 0.7,
    "Kupfer": 1.1,
    "PE-X": 0.6,
    "Messing vernickelt": 1.15,
    "Kunststoff": 0.5,
    "Gummi": 0.3,
    "Faser": 0.35,
    "Stahl": 0.9,
}


class Catalog:
    """Collects rows per output file and hands out unique article numbers per family block."""

    def __init__(self):
        self.files = {}
        self.next_no = {}

    def add(self, file, block, name, category, size="", material="", connection="",
            pressure="", angle="", unit="Stück", price=1.0, synonyms=()):
        no = self.next_no.get(block, block * 1000 + 1)
        self.next_no[block] = no + 1
        row = [
            str(no),
            name,
            category,
            size,
            material,
            connection,
            pressure,
            angle,
            unit,
            "%.2f" % price,
            "|".join(synonyms),
        ]
        self.files.setdefault(file, []).append(row)
        return row


def threaded_fittings(cat):
    """Malleable-iron/brass/gunmetal/stainless threaded fittings in inch sizes."""
    types = [
        # category, name template, synonyms, angle, base price, sizes
        ("T-Stück", "T-Stück {s} {m}", ["Tee-Stück", "Abzweig", "T-Stück Innengewinde"], "",
         3.10, ["3/8", "1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]),
        ("Muffe", "Muffe {s} {m}", ["Gewindemuffe", "Verbindungsmuffe"], "",
         1.60, ["3/8", "1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]),
        ("Winkel", "Winkel 90° {s} {m}", ["Knie", "Winkelstück", "Eckstück", "Rohrwinkel"], "90°",
         2.40, ["3/8", "1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]),
        ("Bogen", "Bogen 45° {s} {m}", ["Rohrbogen", "45-Grad-Bogen"], "45°",
         2.90, ["1/2", "3/4", "1", "1 1/4"]),
        ("Kappe", "Kappe {s} {m}", ["Endkappe", "Verschlusskappe", "Gewindekappe"], "",
         1.20, ["3/8", "1/2", "3/4", "1", "1 1/4"]),
        ("Doppelnippel", "Doppelnippel {s} {m}", ["Nippel", "Gewindenippel"], "",
         1.40, ["3/8", "1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]),
        ("Verschraubung", "Verschraubung flachdichtend {s} {m}",
         ["Holländer", "Überwurfverschraubung", "Rohrverschraubung"], "",
         5.80, ["1/2", "3/4", "1", "1 1/4"]),
        ("Stopfen", "Stopfen {s} {m}", ["Verschlussstopfen", "Blindstopfen", "Gewindestopfen"], "",
         0.90, ["3/8", "1/2", "3/4", "1"]),
    ]
    materials = ["Messing", "Rotguss", "verzinkt", "Edelstahl"]
    for m in materials:
        for category, tmpl, syn, angle, base, sizes in types:
            for s in sizes:
                label, size, f = INCH[s]
                cat.add("gewindefittings.csv", 100, tmpl.format(s=label, m=m), category, size, m,
                        "Gewinde", "PN 16", angle, "Stück", base * f * MATERIAL_FACTOR[m], syn)
    # Reducers: two sizes.
    for m in materials:
        for a, b in [("3/4", "1/2"), ("1", "1/2"), ("1", "3/4"), ("1 1/4", "1"), ("2", "1 1/2")]:
            la, sa, fa = INCH[a]
            lb, sb, _ = INCH[b]
            cat.add("gewindefittings.csv", 100, "Reduzierstück %s x %s %s" % (la, lb, m),
                    "Reduzierstück", "%s x %s" % (sa, sb), m, "Gewinde", "PN 16", "", "Stück",
                    2.2 * fa * MATERIAL_FACTOR[m], ["Reduziermuffe", "Reduzierung", "Reduktion"])


def press_fittings(cat):
    """Copper and stainless press fittings in metric outer diameters."""
    sizes = [12, 15, 18, 22, 28, 35]
    types = [
        ("T-Stück", "Pressfitting T-Stück {d} mm {m}", ["Press-T-Stück", "Tee-Stück"], "", 4.20),
        ("Muffe", "Pressfitting Muffe {d} mm {m}", ["Pressmuffe", "Schiebemuffe"], "", 2.30),
        ("Winkel", "Pressfitting Winkel 90° {d} mm {m}", ["Presswinkel", "Knie"], "90°", 3.10),
        ("Bogen", "Pressfitting Bogen 45° {d} mm {m}", ["Pressbogen"], "45°", 3.40),
        ("Kappe", "Pressfitting Kappe {d} mm {m}", ["Presskappe", "Endkappe"], "", 1.90),
    ]
    for m in ["Kupfer", "Edelstahl"]:
        for category, tmpl, syn, angle, base in types:
            for d in sizes:
                cat.add("pressfittings.csv", 200, tmpl.format(d=d, m=m), category, "%d mm" % d, m,
                        "Pressen", "PN 16", angle, "Stück", base * MM_FACTOR[d] * MATERIAL_FACTOR[m],
                        syn + ["Pressfitting"])
        for a, b in [(18, 15), (22, 15), (22, 18), (28, 22), (35, 28)]:
            cat.add("pressfittings.csv", 200, "Pressfitting Reduzierstück %d x %d mm %s" % (a, b, m),
                    "Reduzierstück", "%d mm x %d mm" % (a, b), m, "Pressen", "PN 16", "", "Stück",
                    3.3 * MM_FACTOR[a] * MATERIAL_FACTOR[m], ["Pressreduzierung", "Reduzierung"])
    # Transition pieces copper press -> thread (external thread, brass/gunmetal).
    for d, s in [(15, "1/2"), (18, "1/2"), (22, "3/4"), (28, "1"), (35, "1 1/4")]:
        label, size, f = INCH[s]
        for kind, syn in [("Außengewinde", ["AG", "Übergangsnippel"]),
                          ("Innengewinde", ["IG", "Übergangsmuffe"])]:
            cat.add("pressfittings.csv", 200,
                    "Übergangsstück %d mm x %s %s Rotguss" % (d, label, kind), "Übergangsstück",
                    "%d mm x %s" % (d, size), "Rotguss", "Pressen", "PN 16", "", "Stück",
                    5.5 * MM_FACTOR[d], ["Übergang", "Adapter", "Pressübergang"] + syn)


def pipes(cat):
    for d in [12, 15, 18, 22, 28, 35, 42, 54]:
        cat.add("rohre.csv", 300, "Kupferrohr %d mm, Stange" % d, "Kupferrohr",
                "%d mm" % d, "Kupfer", "Pressen", "", "", "Meter", 6.5 * MM_FACTOR[d],
                ["Cu-Rohr", "Kupferleitung", "Installationsrohr"])
    for d in [12, 15, 18, 22]:
        cat.add("rohre.csv", 300, "Kupferrohr %d mm weich, Ring 25 m" % d, "Kupferrohr",
                "%d mm" % d, "Kupfer", "Pressen", "", "", "Rolle", 6.2 * 25 * MM_FACTOR[d],
                ["Kupferring", "Ringware", "weiches Kupferrohr"])
    for d, w in [(16, 2), (20, 2), (26, 3), (32, 3), (40, 3.5)]:
        size = "%d mm x %s mm" % (d, ("%g" % w).replace(".", ","))
        cat.add("rohre.csv", 300, "Mehrschichtverbundrohr %d x %s mm" % (d, ("%g" % w).replace(".", ",")),
                "Mehrschichtverbundrohr", size.replace(",", "."), "PE-X/Alu", "Pressen", "PN 10", "",
                "Meter", 1.9 * d / 16, ["Verbundrohr", "MSV-Rohr", "Alu-Verbundrohr"])
        cat.add("rohre.csv", 300, "Mehrschichtverbundrohr %d x %s mm, Rolle 50 m"
                % (d, ("%g" % w).replace(".", ",")),
                "Mehrschichtverbundrohr", size.replace(",", "."), "PE-X/Alu", "Pressen", "PN 10", "",
                "Rolle", 1.7 * 50 * d / 16, ["Verbundrohr", "MSV-Rohr", "Verbundrohr Ringbund"])
    for d in [16, 20, 25]:
        cat.add("rohre.csv", 300, "PE-X Rohr %d x 2 mm, Rolle 100 m" % d, "PE-X-Rohr",
                "%d mm x 2 mm" % d, "PE-X", "Stecken", "PN 6", "", "Rolle", 0.9 * 100 * d / 16,
                ["Fußbodenheizungsrohr", "Heizungsrohr", "Kunststoffrohr"])
    for d in [15, 18, 22, 28]:
        cat.add("rohre.csv", 300, "Edelstahlrohr %d mm, Stange" % d, "Edelstahlrohr", "%d mm" % d,
                "Edelstahl", "Pressen", "PN 16", "", "Meter", 9.8 * MM_FACTOR[d],
                ["Niro-Rohr", "Systemrohr Edelstahl"])
    for s in ["1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]:
        label, size, f = INCH[s]
        cat.add("rohre.csv", 300, "Gewinderohr %s verzinkt" % label, "Stahlrohr", size, "verzinkt",
                "Gewinde", "PN 16", "", "Meter", 7.5 * f, ["Stahlrohr", "Siederohr", "Gasrohr"])


def valves(cat):
    for s in ["3/8", "1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]:
        label, size, f = INCH[s]
        cat.add("armaturen.csv", 400, "Kugelhahn %s IG/IG mit Hebelgriff, Messing vernickelt" % label,
                "Kugelhahn", size, "Messing vernickelt", "Gewinde", "PN 40", "", "Stück", 8.9 * f,
                ["Absperrhahn", "Hebelkugelhahn", "Kugelventil"])
        cat.add("armaturen.csv", 400, "Kugelhahn %s IG/IG mit Flügelgriff, Messing" % label,
                "Kugelhahn", size, "Messing", "Gewinde", "PN 25", "", "Stück", 7.9 * f,
                ["Absperrhahn", "Flügelkugelhahn", "Kugelventil"])
    for d in [15, 18, 22, 28]:
        cat.add("armaturen.csv", 400, "Kugelhahn mit Pressanschluss %d mm, Rotguss" % d, "Kugelhahn",
                "%d mm" % d, "Rotguss", "Pressen", "PN 16", "", "Stück", 17.5 * MM_FACTOR[d],
                ["Absperrhahn", "Presskugelhahn"])
    for s in ["1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]:
        label, size, f = INCH[s]
        cat.add("armaturen.csv", 400, "Absperrventil Schrägsitz %s, Rotguss" % label, "Absperrventil",
                size, "Rotguss", "Gewinde", "PN 16", "", "Stück", 14.0 * f,
                ["Schrägsitzventil", "Freistromventil", "Hauptabsperrventil"])
        cat.add("armaturen.csv", 400, "Rückflussverhinderer %s, Messing" % label,
                "Rückflussverhinderer", size, "Messing", "Gewinde", "PN 16", "", "Stück", 6.3 * f,
                ["Rückschlagventil", "Rückschlagklappe", "Rückflusssperre"])
    for s in ["1/2", "3/4"]:
        label, size, f = INCH[s]
        cat.add("armaturen.csv", 400, "KFE-Hahn %s, Messing" % label, "KFE-Hahn", size, "Messing",
                "Gewinde", "PN 10", "", "Stück", 4.9 * f,
                ["Kesselfüllhahn", "Füll- und Entleerhahn", "Entleerungshahn"])
    for s in ["3/8", "1/2", "3/4"]:
        label, size, f = INCH[s]
        for form, syn in [("Eckform", ["Eckventil Heizkörper"]), ("Durchgangsform", ["Durchgangsventil"])]:
            cat.add("armaturen.csv", 400, "Thermostatventil %s %s, Messing vernickelt" % (label, form),
                    "Thermostatventil", size, "Messing vernickelt", "Gewinde", "PN 10", "", "Stück",
                    11.5 * f, ["Heizkörperventil", "Ventilunterteil"] + syn)
            cat.add("armaturen.csv", 400,
                    "Heizkörperverschraubung %s %s, Messing vernickelt" % (label, form),
                    "Heizkörperverschraubung", size, "Messing vernickelt", "Gewinde", "PN 10", "",
                    "Stück", 7.2 * f, ["Rücklaufverschraubung", "Rücklaufventil"])
    cat.add("armaturen.csv", 400, "Thermostatkopf mit Flüssigfühler M30 x 1,5", "Thermostatkopf", "",
            "Kunststoff", "", "", "", "Stück", 12.9, ["Thermostat", "Heizkörperthermostat"])
    cat.add("armaturen.csv", 400, "Eckventil 1/2\" x 3/8\" verchromt", "Eckventil", "1/2 Zoll x 3/8 Zoll",
            "Messing vernickelt", "Gewinde", "PN 10", "", "Stück", 6.9, ["Eckregulierventil"])
    for s in ["3/8", "1/2"]:
        label, size, f = INCH[s]
        cat.add("armaturen.csv", 400, "Entlüftungsventil %s, Messing" % label, "Entlüftungsventil",
                size, "Messing", "Gewinde", "PN 10", "", "Stück", 3.4 * f,
                ["Entlüfter", "Schnellentlüfter", "Heizkörperentlüfter"])


def sealing(cat):
    for s in ["3/8", "1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]:
        label, size, f = INCH[s]
        for m, extra in [("Faser", ["Fiberdichtung"]), ("Gummi", ["Gummidichtung", "EPDM-Dichtung"])]:
            cat.add("dichtungen.csv", 500, "Flachdichtung %s %s, Packung 10 Stück" % (label, m),
                    "Flachdichtung", size, m, "", "", "", "Packung", 1.8 * f * MATERIAL_FACTOR[m] * 3,
                    ["Dichtung", "Dichtring", "Dichtscheibe"] + extra)
    for d in [12, 15, 18, 22, 28, 35]:
        cat.add("dichtungen.csv", 500, "O-Ring %d mm EPDM, Packung 10 Stück" % d, "O-Ring", "%d mm" % d,
                "Gummi", "", "", "", "Packung", 2.4 * MM_FACTOR[d], ["Dichtring", "Runddichtring"])
    cat.add("dichtungen.csv", 500, "Dichtungssortiment Sanitär, 400-teilig", "Dichtungssortiment", "",
            "Gummi", "", "", "", "Packung", 24.9, ["Dichtungsset", "Dichtungskoffer"])
    cat.add("dichtungen.csv", 500, "Hanf Zopf 100 g", "Hanf", "", "Faser", "", "", "", "Packung", 2.95,
            ["Dichthanf", "Flachs", "Gewindehanf"])
    cat.add("dichtungen.csv", 500, "Hanf Zopf 500 g", "Hanf", "", "Faser", "", "", "", "Packung", 11.90,
            ["Dichthanf", "Flachs", "Gewindehanf"])
    cat.add("dichtungen.csv", 500, "Dichtpaste für Hanf, Dose 250 g", "Dichtpaste", "", "", "", "", "",
            "Dose", 6.40, ["Gewindedichtpaste", "Hanfpaste", "Dichtmittel"])
    cat.add("dichtungen.csv", 500, "Dichtpaste für Hanf, Tube 65 g", "Dichtpaste", "", "", "", "", "",
            "Tube", 3.20, ["Gewindedichtpaste", "Hanfpaste"])
    cat.add("dichtungen.csv", 500, "Gewindedichtfaden 160 m", "Gewindedichtfaden", "", "Kunststoff", "",
            "", "", "Rolle", 13.50, ["Dichtfaden", "Dichtschnur", "Loctite-Faden"])
    cat.add("dichtungen.csv", 500, "PTFE-Gewindedichtband 12 m", "Teflonband", "", "Kunststoff", "", "",
            "", "Rolle", 0.95, ["Teflonband", "Dichtband", "Gewindeband"])


def fixing(cat):
    for d in [12, 15, 18, 22, 28, 35, 42, 54]:
        cat.add("befestigung.csv", 600, "Rohrschelle %d mm mit Gummieinlage, M8" % d, "Rohrschelle",
                "%d mm" % d, "verzinkt", "", "", "", "Stück", 0.85 * MM_FACTOR[d],
                ["Schelle", "Rohrhalter", "Gelenkrohrschelle"])
    for s in ["1/2", "3/4", "1", "1 1/4", "1 1/2", "2"]:
        label, size, f = INCH[s]
        cat.add("befestigung.csv", 600, "Rohrschelle %s mit Gummieinlage, M8" % label, "Rohrschelle",
                size, "verzinkt", "", "", "", "Stück", 0.95 * f, ["Schelle", "Rohrhalter"])
    for d in [15, 22]:
        cat.add("befestigung.csv", 600, "Rohrschelle %d mm, Packung 50 Stück" % d, "Rohrschelle",
                "%d mm" % d, "verzinkt", "", "", "", "Packung", 32.0 * MM_FACTOR[d],
                ["Schelle", "Rohrhalter"])
    for length in [80, 100, 120]:
        cat.add("befestigung.csv", 600, "Stockschraube M8 x %d mm, Packung 50 Stück" % length,
                "Stockschraube", "", "verzinkt", "", "", "", "Packung", 9.5 + length / 20,
                ["Gewindeschraube", "Schraube"])
    cat.add("befestigung.csv", 600, "Weichlot Kupfer 3 %, Rolle 250 g", "Lötzinn", "", "Zinn", "", "",
            "", "Rolle", 21.9, ["Lot", "Weichlot", "Lötdraht"])
    cat.add("befestigung.csv", 600, "Flussmittel für Weichlöten, Dose 250 g", "Flussmittel", "", "", "",
            "", "", "Dose", 8.4, ["Lötfett", "Lötpaste"])
    cat.add("befestigung.csv", 600, "Rohrisolierung 15 mm x 9 mm, Länge 2 m", "Rohrisolierung",
            "15 mm", "Kunststoff", "", "", "", "Stück", 1.9, ["Isolierung", "Dämmschlauch"])
    cat.add("befestigung.csv", 600, "Rohrisolierung 22 mm x 9 mm, Länge 2 m", "Rohrisolierung",
            "22 mm", "Kunststoff", "", "", "", "Stück", 2.4, ["Isolierung", "Dämmschlauch"])


def sample():
    cat = Catalog()
    threaded_fittings(cat)
    press_fittings(cat)
    pipes(cat)
    valves(cat)
    sealing(cat)
    fixing(cat)
    return cat


BRANDS = [
    "Aquaflux", "Thermaris", "Rohrwerk", "Nordhahn", "Sanitec", "Kalorix", "Hydrolit", "Flussberg",
    "Wärmeland", "Brückner", "Großmann", "Ventura", "Pressline", "Kupferhof", "Dichtwerk", "Messingtal",
    "Ostfluss", "Heizmeister", "Quellgrün", "Armatec", "Bauernfeind", "Strömholt", "Rheinrohr",
    "Alpenguss", "Fittingsbau", "Westhahn", "Gußwerk", "Tempera", "Zollmann", "Lindström",
]


def synthetic(count, seed=7):
    """Large catalog: sample families x invented manufacturers x series, `count` rows."""
    base = sample()
    rows = [r for f in sorted(base.files) for r in base.files[f]]
    rng = random.Random(seed)
    out = []
    n = 0
    series = 0
    while len(out) < count:
        series += 1
        brand = BRANDS[series % len(BRANDS)]
        line = "Serie %s%d" % ("ABCDEFGHKLMNPRSTUVXZ"[series % 20], 100 + series // 20)
        for r in rows:
            if len(out) >= count:
                break
            n += 1
            price = float(r[9]) * (0.8 + rng.random() * 0.6)
            new = list(r)
            new[0] = str(10_000_000 + n)
            new[1] = "%s %s %s" % (r[1], brand, line)
            new[9] = "%.2f" % price
            out.append(new)
    return out


def write(path, rows):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None,
                   help="output directory (default: data/catalog for the sample, required with --count)")
    p.add_argument("--count", type=int, default=None,
                   help="write one synthetic catalog file with this many products instead of the sample")
    a = p.parse_args()
    if a.count is not None:
        if a.out is None or a.count <= 0:
            p.error("--count needs a positive number and --out DIR")
        rows = synthetic(a.count)
        write(os.path.join(a.out, "synthetic.csv"), rows)
        print("wrote %d products to %s" % (len(rows), os.path.join(a.out, "synthetic.csv")))
        return 0
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "catalog")
    cat = sample()
    total = 0
    for name in sorted(cat.files):
        write(os.path.join(out, name), cat.files[name])
        total += len(cat.files[name])
    print("wrote %d products in %d files to %s" % (total, len(cat.files), os.path.normpath(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
