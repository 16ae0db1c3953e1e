"""The bilingual Gherkin step library, one module per capability.

Every step exists in French (the catalogue's language) and English. ``Soit``/``Given`` steps set the scene,
``Quand``/``When`` steps make the DUI act through the SUT driver, and ``Alors``/``Then`` steps judge what the
journal observed and attach it as evidence.
"""
