"""Field libraries: plain code usable alone — hardened XML, INS identity and its RNIV status, test PKI, HL7 v2, the DUI record facts, test data."""
