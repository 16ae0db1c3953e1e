"""The bilingual Gherkin step library, one module per capability: each service plugin names its module
(``ServicePlugin.steps``); the modules of :data:`SHARED_STEP_MODULES` serve every service.

Every step exists in French (the catalogue's language) and English. ``Soit``/``Given`` steps set the scene,
``Quand``/``When`` steps make the DUI act through the SUT driver, and ``Alors``/``Then`` steps judge what the
journal observed and attach it as evidence.
"""

#: Step modules that belong to no single service (the plugins name the others, :mod:`harness.sut.plugins`).
SHARED_STEP_MODULES = ("harness.steps.common",)
