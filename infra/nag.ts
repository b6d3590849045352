import { Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Acknowledges one cdk-nag AwsSolutions finding on `scope` (and below), with the reason a
 * reviewer reads. `finding` is the rule id, narrowed to one finding for rules that report
 * several (`AwsSolutions-IAM5[Resource::*]`); the `AwsSolutions::` prefix names the plugin, as
 * cdk-nag 3 prints it.
 */
export function acknowledgeNag(scope: IConstruct, finding: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions::${finding}`, reason });
}
