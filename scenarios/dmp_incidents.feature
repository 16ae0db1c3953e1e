# language: fr
@dmp
Fonctionnalité: Incidents du DMP : le DUI affiche le refus et ne croit pas avoir versé
  Le DMP peut répondre par une faute SOAP 1.2 (panne, maintenance) au lieu de traiter la requête. Le DUI affiche
  alors l'échec à son utilisateur : aucun document n'est versé, et le DUI ne l'indique pas comme versé.

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"
    Et la personne a un DMP actif qui autorise l'ESSMS

  @exigence:DMP-FAUTE-SOAP
  Scénario: Le DMP répond par une faute SOAP : le DUI affiche le refus et aucun document n'est versé
    Soit le DMP répondra à la prochaine requête par une faute SOAP "maintenance du DMP"
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DUI signale le refus du DMP
    Et aucun document n'est versé au DMP pour la personne
