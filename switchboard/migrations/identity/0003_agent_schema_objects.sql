-- Agents' schema vocabulary, and installing agents from templates by mirroring it.
--
-- Every object belongs to an organisation and one of its agents. A mirrored object carries its
-- provenance (template agent, source organisation, source object) and reads as managed; an object
-- without provenance is user-authored. Slugs are unique per organisation and kind, whatever the
-- status: an archived object keeps its slug.

-- No foreign key on template_agent_id: an installed copy stays an installed copy (and knows which
-- template it came from) even if the template is deleted; resync then says the template is gone.
ALTER TABLE agents
    ADD COLUMN template_agent_id uuid,
    ADD COLUMN source_organization_id uuid;

-- One installed copy of a template per organisation: what makes concurrent installs converge.
ALTER TABLE agents ADD CONSTRAINT agents_one_install_per_organization UNIQUE (template_agent_id, organization_id);

CREATE TABLE entity_types (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- RESTRICT: removing an agent never takes user-authored objects with it (UninstallAgent removes
    -- the managed ones first, and refuses while user-authored ones remain).
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,
    slug text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    schema_json text NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    template_agent_id uuid,
    source_organization_id uuid,
    source_object_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT entity_types_slug_key UNIQUE (organization_id, slug),
    CONSTRAINT entity_types_provenance_whole CHECK (
        (template_agent_id IS NULL) = (source_organization_id IS NULL) AND (template_agent_id IS NULL) = (source_object_id IS NULL)
    )
);
CREATE INDEX entity_types_by_agent ON entity_types (agent_id);

CREATE TABLE relationship_types (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,
    slug text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    schema_json text NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    template_agent_id uuid,
    source_organization_id uuid,
    source_object_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT relationship_types_slug_key UNIQUE (organization_id, slug),
    CONSTRAINT relationship_types_provenance_whole CHECK (
        (template_agent_id IS NULL) = (source_organization_id IS NULL) AND (template_agent_id IS NULL) = (source_object_id IS NULL)
    )
);
CREATE INDEX relationship_types_by_agent ON relationship_types (agent_id);

CREATE TABLE watchers (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,
    slug text NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    current_version_id uuid,
    template_agent_id uuid,
    source_organization_id uuid,
    source_object_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT watchers_slug_key UNIQUE (organization_id, slug),
    CONSTRAINT watchers_provenance_whole CHECK (
        (template_agent_id IS NULL) = (source_organization_id IS NULL) AND (template_agent_id IS NULL) = (source_object_id IS NULL)
    )
);
CREATE INDEX watchers_by_agent ON watchers (agent_id);

-- Append-only: a version, once written, never changes (runs that referenced it keep their meaning).
CREATE TABLE watcher_versions (
    id uuid PRIMARY KEY,
    watcher_id uuid NOT NULL REFERENCES watchers (id) ON DELETE CASCADE,
    version integer NOT NULL CHECK (version >= 1),
    prompt text NOT NULL,
    schema_json text NOT NULL,
    reaction_script text NOT NULL DEFAULT '',
    template_agent_id uuid,
    source_organization_id uuid,
    -- For a mirrored version: the template's version it copies.
    source_object_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT watcher_versions_number_key UNIQUE (watcher_id, version)
);

ALTER TABLE watchers ADD CONSTRAINT watchers_current_version_fkey
    FOREIGN KEY (current_version_id) REFERENCES watcher_versions (id) DEFERRABLE INITIALLY DEFERRED;

CREATE FUNCTION watcher_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'watcher versions are append-only: version % of watcher % cannot be changed', OLD.version, OLD.watcher_id
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER watcher_versions_append_only BEFORE UPDATE ON watcher_versions
    FOR EACH ROW EXECUTE FUNCTION watcher_versions_append_only();

CREATE TABLE event_classifiers (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE RESTRICT,
    slug text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    watcher_id uuid REFERENCES watchers (id) ON DELETE RESTRICT,
    definition_json text NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    template_agent_id uuid,
    source_organization_id uuid,
    source_object_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_classifiers_slug_key UNIQUE (organization_id, slug),
    CONSTRAINT event_classifiers_provenance_whole CHECK (
        (template_agent_id IS NULL) = (source_organization_id IS NULL) AND (template_agent_id IS NULL) = (source_object_id IS NULL)
    )
);
CREATE INDEX event_classifiers_by_agent ON event_classifiers (agent_id);
CREATE INDEX event_classifiers_by_watcher ON event_classifiers (watcher_id);
