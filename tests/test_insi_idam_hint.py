"""An INSi scenario failing because the simulator does not know the DUI's IDAM (``desir_550``) says what to do:
declare it with ``[settings.insi] authorised_idam`` (issue 16 item 7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.core.journal import Direction, Exchange, Outcome
from harness.steps import insi as steps
from mock_services.insi.service import idam_remedy


@dataclass
class Scene:
    """The part of ScenarioContext the INSi steps read: the exchanges since the DUI's action, the attachments."""

    exchanges: list[Exchange]
    attached: list[str] = field(default_factory=list)

    def exchanges_since_action(self, service: str) -> list[Exchange]:
        assert service == "insi"
        return self.exchanges

    def attach(self, title: str, text: str, exchange: Any = None) -> None:
        self.attached.append(text)


def _refused(details: dict[str, Any], message: str) -> Exchange:
    return Exchange(
        service="insi",
        operation="insi.rechercherInsAvecTraitsIdentite",
        direction=Direction.FROM_DUI,
        outcome=Outcome.REJECTED,
        error_code="desir_550",
        error_message=message,
        details=details,
    )


def test_the_verdict_names_the_setting_that_declares_the_idam() -> None:
    remedy = idam_remedy("EDITEUR-DUI-7")
    assert remedy == (
        "IDAM « EDITEUR-DUI-7 » non déclaré au simulateur : si c'est le numéro d'autorisation de votre DUI, "
        "déclarez-le dans socle-harness.toml, "
        '[settings.insi] authorised_idam = ["EDITEUR-DUI-7"]'
    )
    scene = Scene(
        [_refused({"idam_refused": "EDITEUR-DUI-7", "remedy": remedy}, f"env:Sender/siram_100: … — {remedy}")]
    )
    with pytest.raises(AssertionError) as verdict:
        steps.answers_with_person_ins(scene, "00")  # type: ignore[arg-type]
    assert str(verdict.value) == f"le téléservice INSi a refusé l'appel (desir_550) : {remedy}"
    assert scene.attached and remedy in scene.attached[0]  # the evidence shows the journal's reason too


def test_an_injected_desir_550_keeps_its_own_verdict() -> None:
    scene = Scene([_refused({}, "env:Sender/siram_100: Numéro d'autorisation du logiciel inconnu.")])
    steps.rejected_with(scene, "desir_550")  # type: ignore[arg-type]
    with pytest.raises(AssertionError) as verdict:
        steps.answers_with_person_ins(scene, "00")  # type: ignore[arg-type]
    assert str(verdict.value) == "le téléservice INSi n'a renvoyé aucune réponse (seulement des fautes)"


def test_an_absent_idam_is_the_dui_s_to_send() -> None:
    assert idam_remedy(None) == (
        "le DUI n'envoie aucun IDAM (ContexteLPS/LPS/IDAM) : il doit présenter son numéro d'autorisation"
    )
