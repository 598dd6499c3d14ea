//! An end user asking, in the channel, for their data to be deleted: the phrases that start it, the yes/no
//! that confirms it, and what the bot says, in the language the request was made in.

/// A language the deletion dialogue speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
    Fr,
    Es,
    It,
    Pt,
}

impl Lang {
    pub fn code(&self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
            Lang::It => "it",
            Lang::Pt => "pt",
        }
    }

    pub fn parse(code: &str) -> Lang {
        match code {
            "de" => Lang::De,
            "fr" => Lang::Fr,
            "es" => Lang::Es,
            "it" => Lang::It,
            "pt" => Lang::Pt,
            _ => Lang::En,
        }
    }
}

/// Built-in phrases (compared after normalising case, accents and punctuation).
const PHRASES: &[(Lang, &str)] = &[
    (Lang::En, "delete my data"),
    (Lang::En, "delete my personal data"),
    (Lang::En, "erase my data"),
    (Lang::En, "remove my data"),
    (Lang::En, "forget me"),
    (Lang::De, "losche meine daten"),
    (Lang::De, "loesche meine daten"),
    (Lang::De, "meine daten loschen"),
    (Lang::Fr, "supprimer mes donnees"),
    (Lang::Fr, "supprimez mes donnees"),
    (Lang::Fr, "effacer mes donnees"),
    (Lang::Es, "borrar mis datos"),
    (Lang::Es, "borra mis datos"),
    (Lang::Es, "eliminar mis datos"),
    (Lang::It, "cancella i miei dati"),
    (Lang::It, "cancellare i miei dati"),
    (Lang::Pt, "apagar meus dados"),
    (Lang::Pt, "apague meus dados"),
    (Lang::Pt, "excluir meus dados"),
];

/// Lower case, common accents folded, punctuation dropped, spaces collapsed.
pub fn normalise(text: &str) -> String {
    let folded: String = text
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'ä' | 'à' | 'á' | 'â' | 'ã' => 'a',
            'ö' | 'ò' | 'ó' | 'ô' | 'õ' => 'o',
            'ü' | 'ù' | 'ú' | 'û' => 'u',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ç' => 'c',
            'ñ' => 'n',
            'ß' => 's',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `text` asks for deletion: a built-in phrase or one of `extra` (the operator's own), as the whole
/// message or inside a short one (at most 12 words, so a long question that mentions it is not taken as
/// the request). Returns the language to answer in.
pub fn deletion_request(text: &str, extra: &[String]) -> Option<Lang> {
    let t = normalise(text);
    if t.is_empty() || t.split(' ').count() > 12 {
        return None;
    }
    let padded = format!(" {t} ");
    PHRASES
        .iter()
        .map(|(l, p)| (*l, (*p).to_string()))
        .chain(extra.iter().map(|p| (Lang::En, normalise(p))))
        .find(|(_, p)| !p.is_empty() && padded.contains(&format!(" {p} ")))
        .map(|(l, _)| l)
}

/// A yes or a no, in any of the languages; `None` for anything else.
pub fn yes_no(text: &str) -> Option<bool> {
    let t = normalise(text);
    const YES: &[&str] = &[
        "yes",
        "y",
        "ja",
        "oui",
        "si",
        "sim",
        "yes please",
        "confirm",
        "ok",
        "yes delete",
    ];
    const NO: &[&str] = &["no", "n", "nein", "non", "nao", "cancel", "keep", "stop"];
    if YES.contains(&t.as_str()) {
        Some(true)
    } else if NO.contains(&t.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// What the bot says at each step.
pub fn confirm_question(l: Lang) -> &'static str {
    match l {
        Lang::En => {
            "Do you want me to delete this conversation and everything stored about you on this channel? Reply YES to delete or NO to keep it."
        }
        Lang::De => {
            "Soll ich dieses Gespräch und alles, was über dich auf diesem Kanal gespeichert ist, löschen? Antworte JA zum Löschen oder NEIN zum Behalten."
        }
        Lang::Fr => {
            "Voulez-vous que je supprime cette conversation et tout ce qui est enregistré à votre sujet sur ce canal ? Répondez OUI pour supprimer ou NON pour conserver."
        }
        Lang::Es => {
            "¿Quieres que borre esta conversación y todo lo guardado sobre ti en este canal? Responde SÍ para borrar o NO para conservarlo."
        }
        Lang::It => {
            "Vuoi che cancelli questa conversazione e tutto ciò che è salvato su di te in questo canale? Rispondi SÌ per cancellare o NO per conservare."
        }
        Lang::Pt => {
            "Quer que eu apague esta conversa e tudo o que está guardado sobre você neste canal? Responda SIM para apagar ou NÃO para manter."
        }
    }
}

pub fn deleted_notice(l: Lang) -> &'static str {
    match l {
        Lang::En => {
            "Done: this conversation and everything stored about you on this channel have been deleted."
        }
        Lang::De => {
            "Erledigt: Dieses Gespräch und alles, was über dich auf diesem Kanal gespeichert war, wurde gelöscht."
        }
        Lang::Fr => {
            "C'est fait : cette conversation et tout ce qui était enregistré à votre sujet sur ce canal ont été supprimés."
        }
        Lang::Es => {
            "Hecho: esta conversación y todo lo guardado sobre ti en este canal se han borrado."
        }
        Lang::It => {
            "Fatto: questa conversazione e tutto ciò che era salvato su di te in questo canale sono stati cancellati."
        }
        Lang::Pt => {
            "Pronto: esta conversa e tudo o que estava guardado sobre você neste canal foram apagados."
        }
    }
}

pub fn kept_notice(l: Lang) -> &'static str {
    match l {
        Lang::En => "Okay, nothing was deleted.",
        Lang::De => "In Ordnung, es wurde nichts gelöscht.",
        Lang::Fr => "D'accord, rien n'a été supprimé.",
        Lang::Es => "De acuerdo, no se ha borrado nada.",
        Lang::It => "Va bene, non è stato cancellato nulla.",
        Lang::Pt => "Tudo bem, nada foi apagado.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_recognised_in_several_languages() {
        let cases = [
            ("Delete my data", Some(Lang::En)),
            ("please delete my data!", Some(Lang::En)),
            ("Lösche meine Daten", Some(Lang::De)),
            ("Supprimer mes données s'il vous plaît", Some(Lang::Fr)),
            ("borrar mis datos", Some(Lang::Es)),
            ("Cancella i miei dati", Some(Lang::It)),
            ("apagar meus dados", Some(Lang::Pt)),
            ("Do you ship to Canada?", None),
            (
                "I read your policy on how you delete my data when I close my account and I wonder how long it takes",
                None,
            ),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(deletion_request(text, &[]), want, "{text:?}");
        }
        assert_eq!(
            deletion_request("wipe everything", &["Wipe everything".into()]),
            Some(Lang::En)
        );
    }

    #[test]
    fn yes_and_no_are_recognised() {
        for y in ["YES", "yes.", "Ja", "oui", "Sí", "sim"] {
            assert_eq!(yes_no(y), Some(true), "{y}");
        }
        for n in ["no", "Nein", "non", "não"] {
            assert_eq!(yes_no(n), Some(false), "{n}");
        }
        assert_eq!(yes_no("maybe later"), None);
    }
}
